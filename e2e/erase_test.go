package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/erasure"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

// person is a customer with personal data that is unique to the test, so
// finding any piece of it anywhere is a finding.
type person struct {
	id, email, first, last, company string
}

func newPerson(tag, run string) person {
	return person{
		id: tag + "-" + run, email: fmt.Sprintf("%s.%s@erase-%s.example", tag, run, run),
		first: "Firstname" + strings.ToUpper(tag) + run, last: "Lastname" + strings.ToUpper(tag) + run,
		company: "Company" + strings.ToUpper(tag) + run,
	}
}

// pieces are the strings that must not survive an erase.
func (p person) pieces() []string { return []string{p.email, p.first, p.last, p.company} }

func (p person) signup(zone string) workflows.Signup {
	return workflows.Signup{CustomerID: p.id, Email: p.email, FirstName: p.first, LastName: p.last,
		Company: p.company, LeadSource: "cold", TimeZone: zone}
}

// eraseStack is a worker, and the HTTP API as cmd/api assembles it (with
// the eraser), on the real stack.
type eraseStack struct {
	*stack
	store  *crm.Store
	caller *api.Client
	signer email.Signer
	apiURL string
}

func newEraseStack(t *testing.T) *eraseStack {
	t.Helper()
	s := newStack(t, 1)
	s.StartWorker(t)
	ctx := context.Background()
	store, err := crm.Open(ctx, s.Cfg.DatabaseURL.Value())
	require.NoError(t, err)
	t.Cleanup(store.Close)
	st := s.starter()
	signer := email.NewSigner([]byte(s.Cfg.UnsubscribeSecret.Value()))
	srv := httptest.NewServer(api.New(api.Options{
		Starter: st, CRM: store, Signer: signer, Secret: []byte(s.Cfg.APISecret.Value()),
		Eraser: &erasure.Eraser{Journeys: st, CRM: store, Keys: s.Encryption.Keys, Audit: store.Pool()},
		Logger: stacktest.QuietLogger(),
	}))
	t.Cleanup(srv.Close)
	return &eraseStack{stack: s, store: store, signer: signer, apiURL: srv.URL,
		caller: &api.Client{BaseURL: srv.URL, Secret: []byte(s.Cfg.APISecret.Value()), HTTP: &http.Client{Timeout: 30 * time.Second}}}
}

// unsubscribe clicks the one-click unsubscribe of p's emails.
func (s *eraseStack) unsubscribe(t *testing.T, p person) {
	t.Helper()
	form := url.Values{"List-Unsubscribe": {"One-Click"}}
	u := s.apiURL + "/v1/unsubscribe?c=" + url.QueryEscape(p.id) + "&t=" + url.QueryEscape(s.signer.Token(p.id))
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "unsubscribe answered %s", resp.Status)
}

// waitEnded waits until p's journey is no longer running and returns its
// status.
func (s *eraseStack) waitEnded(t *testing.T, p person) enumspb.WorkflowExecutionStatus {
	t.Helper()
	var status enumspb.WorkflowExecutionStatus
	stacktest.WaitFor(t, 60*time.Second, "journey of "+p.id+" to end", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := s.Client.DescribeWorkflowExecution(ctx, workflows.JourneyID(p.id), "")
		if err != nil {
			return false, err.Error()
		}
		status = d.GetWorkflowExecutionInfo().GetStatus()
		return status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, status.String()
	})
	return status
}

// TestEraseLeavesNoReadablePersonalData is the "done when": a
// customer who signed up, received mail, unsubscribed and then asked to be
// erased leaves no readable personal data in PostgreSQL or in Temporal,
// while another customer's data stays readable through the codec. Each
// step of the erase is needed for one of the checks: without the CRM
// redaction the dump finds the address; without the key destruction the
// codec still decrypts the history; without encryption the raw history
// holds the address.
func TestEraseLeavesNoReadablePersonalData(t *testing.T) {
	t.Parallel()
	s := newEraseStack(t)
	run := testenv.RandomID(5)
	gone, kept := newPerson("gone", run), newPerson("kept", run)
	zone := stacktest.DaytimeZone(t)
	ctx := context.Background()

	for _, p := range []person{gone, kept} {
		_, err := s.caller.Signup(ctx, p.signup(zone))
		require.NoError(t, err)
	}
	for _, p := range []person{gone, kept} {
		s.WaitMail(t, p.email, welcomeSubject, 60*time.Second)
	}
	s.unsubscribe(t, gone)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.waitEnded(t, gone), "an unsubscribe ends the journey")

	// The journey has ended: the erase must work all the same.
	res, err := s.caller.Erase(ctx, gone.id, "e2e test")
	require.NoError(t, err)
	require.Equal(t, erasure.JourneyNotRunning, res.Journey)
	require.Equal(t, erasure.CRMRedacted, res.CRM)
	require.Equal(t, erasure.KeyShredded, res.DataKey)

	// PostgreSQL, as an auditor would look at it: a pg_dump of the CRM.
	dump := pgDump(t, s.Cfg.DatabaseURL.Value())
	require.Contains(t, dump, kept.email, "the dump holds the customers who were not erased (the check can see data)")
	for _, piece := range gone.pieces() {
		require.False(t, strings.Contains(dump, piece), "the CRM dump still holds %q of the erased customer", piece)
	}
	var suppressed bool
	require.NoError(t, s.store.Pool().QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1 AND reason = 'erased')`, crm.HashEmail(gone.email)).Scan(&suppressed))
	require.True(t, suppressed, "the erased address is kept as a hash, so it is recognised later")
	var audit string
	require.NoError(t, s.store.Pool().QueryRow(ctx,
		`SELECT concat_ws('|', requested_by, journey, crm, data_key) FROM erasures WHERE customer_id = $1`, gone.id).Scan(&audit))
	require.Equal(t, "e2e test|not running|redacted|shredded", audit)

	// Temporal, read without the codec: no plaintext anywhere in the
	// histories (inputs, signals, activity inputs and results, failures,
	// search attributes, memo) of either customer.
	raw := rawClient(t, s.stack)
	goneHist := histories(t, raw, gone.id)
	keptHist := histories(t, raw, kept.id)
	for _, p := range []struct {
		who  person
		hist []*historypb.HistoryEvent
	}{{gone, goneHist}, {kept, keptHist}} {
		for _, ev := range p.hist {
			b, err := proto.Marshal(ev)
			require.NoError(t, err)
			for _, piece := range p.who.pieces() {
				require.False(t, bytes.Contains(b, []byte(piece)),
					"event %d (%s) of %s's history holds %q in plaintext", ev.GetEventId(), ev.GetEventType(), p.who.id, piece)
			}
		}
	}

	// Temporal, read with the codec (a fresh one, as the codec server or
	// another process would use): the erased customer's payloads no longer
	// decrypt; the other customer's do, and hold their data.
	codec := privacy.NewCodec(privacy.NewKeys(s.Encryption.Pool(), mustKeyring(t, s.stack)))
	goneEncrypted, goneDecrypted := decodeAll(codec, goneHist)
	require.Positive(t, goneEncrypted, "the erased customer's history has encrypted payloads")
	require.Zero(t, goneDecrypted, "a payload of the erased customer still decrypts")
	keptEncrypted, keptDecrypted := decodeAll(codec, keptHist)
	require.Positive(t, keptEncrypted)
	require.Equal(t, keptEncrypted, keptDecrypted, "the other customer's payloads decrypt")
	require.True(t, decodedContains(t, codec, keptHist, kept.email), "the other customer's signup is readable through the codec")
	// What `make record-histories` does with a history: decrypted in
	// place, it holds no ciphertext and replays with the default converter.
	decryptHistory(t, codec, keptHist)
	encryptedLeft, _ := decodeAll(codec, keptHist)
	require.Zero(t, encryptedLeft)

	// Erasing again is safe and says there was nothing left.
	again, err := s.caller.Erase(ctx, gone.id, "")
	require.NoError(t, err)
	require.Equal(t, erasure.KeyAlreadyGone, again.DataKey)

	// The same customer id cannot come back: a signup for it is refused.
	_, err = s.caller.Signup(ctx, gone.signup(zone))
	require.Error(t, err, "a signup for an erased customer id")
	var apiErr *api.ResponseError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, http.StatusGone, apiErr.StatusCode, "%v", err)
}

// TestEraseRunningAndUnknownCustomers: an erase ends a running journey at
// once, and erasing a customer who never signed up succeeds too.
func TestEraseRunningAndUnknownCustomers(t *testing.T) {
	t.Parallel()
	s := newEraseStack(t)
	run := testenv.RandomID(5)
	live := newPerson("live", run)
	ctx := context.Background()
	_, err := s.caller.Signup(ctx, live.signup(stacktest.DaytimeZone(t)))
	require.NoError(t, err)
	s.WaitMail(t, live.email, welcomeSubject, 60*time.Second)

	res, err := s.caller.Erase(ctx, live.id, "")
	require.NoError(t, err)
	require.Equal(t, erasure.JourneyTerminated, res.Journey)
	require.Equal(t, erasure.KeyShredded, res.DataKey)
	d, err := s.Client.DescribeWorkflowExecution(ctx, workflows.JourneyID(live.id), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.GetWorkflowExecutionInfo().GetStatus())
	c, err := s.store.GetContact(ctx, live.id)
	require.NoError(t, err)
	require.True(t, c.Erased())
	require.Empty(t, c.Email)

	// Never signed up: nothing to end, a tombstone and a destroyed key so
	// that a late signup cannot bring the person in.
	res, err = s.caller.Erase(ctx, "never-"+run, "")
	require.NoError(t, err)
	require.Equal(t, erasure.JourneyNotRunning, res.Journey)

	// The erase event of POST /v1/events is the same erase.
	other := newPerson("event", run)
	_, err = s.caller.Signup(ctx, other.signup(stacktest.DaytimeZone(t)))
	require.NoError(t, err)
	s.WaitMail(t, other.email, welcomeSubject, 60*time.Second)
	_, err = s.caller.Event(ctx, api.Event{CustomerID: other.id, ID: "erase-1", Type: "erase"})
	require.NoError(t, err)
	var n int
	require.NoError(t, s.store.Pool().QueryRow(ctx, `SELECT count(*) FROM erasures WHERE customer_id = $1`, other.id).Scan(&n))
	require.Equal(t, 1, n)
}

// pgDump dumps the database's data as pg_dump does for an auditor.
func pgDump(t *testing.T, databaseURL string) string {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	require.NoError(t, err, "pg_dump is needed to check the erase (scripts/test.sh installs postgresql-client)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--data-only", "--no-owner", "--dbname="+databaseURL).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("pg_dump: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	return string(out)
}

// rawClient is a Temporal client without the codec: it sees what the
// server stores.
func rawClient(t *testing.T, s *stack) client.Client {
	t.Helper()
	opts, err := s.Cfg.Temporal.ClientOptions()
	require.NoError(t, err)
	opts.Logger = tlog.NewStructuredLogger(stacktest.QuietLogger())
	c, err := client.Dial(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func mustKeyring(t *testing.T, s *stack) privacy.Keyring {
	t.Helper()
	ring, err := s.Cfg.Payload.Keyring()
	require.NoError(t, err)
	return ring
}

// histories are the events of every run of the customer's journey (a
// journey continues as new at stage boundaries).
func histories(t *testing.T, c client.Client, customerID string) []*historypb.HistoryEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, workflows.JourneyID(customerID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	// GetWorkflowHistory of the latest run; earlier runs are found through
	// the first event's link to the run it continued.
	runs := 0
	for {
		var first *historypb.HistoryEvent
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if first == nil {
				first = ev
			}
			events = append(events, ev)
		}
		runs++
		prev := first.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		if prev == "" || runs > 50 {
			break
		}
		it = c.GetWorkflowHistory(ctx, workflows.JourneyID(customerID), prev, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	}
	require.NotEmpty(t, events)
	return events
}

// decodeAll decodes every encrypted payload of the events one by one and
// counts them and the ones that decrypted.
func decodeAll(codec *privacy.Codec, events []*historypb.HistoryEvent) (encrypted, decrypted int) {
	for _, ev := range events {
		var ps []*commonpb.Payload
		payloadsOf(ev.ProtoReflect(), &ps)
		for _, p := range ps {
			if string(p.GetMetadata()["encoding"]) != "binary/encrypted" {
				continue
			}
			encrypted++
			if _, err := codec.Decode([]*commonpb.Payload{p}); err == nil {
				decrypted++
			}
		}
	}
	return encrypted, decrypted
}

// decodedContains reports whether a decrypted payload holds s.
func decodedContains(t *testing.T, codec *privacy.Codec, events []*historypb.HistoryEvent, s string) bool {
	t.Helper()
	for _, ev := range events {
		var ps []*commonpb.Payload
		payloadsOf(ev.ProtoReflect(), &ps)
		out, err := codec.Decode(ps)
		require.NoError(t, err)
		for _, p := range out {
			if bytes.Contains(p.GetData(), []byte(s)) {
				return true
			}
		}
	}
	return false
}
