package activities_test

// Integration tests of the activities against the real stack: a fresh
// PostgreSQL database per test (testenv.NewDatabase), the shared test
// Mailpit (testenv.Mailpit) or a private one (mailpittest.Start), the
// embedded campaigns, and Temporal's test activity environment so that the
// activities see a real activity.Info. Nothing is mocked.
//
// The shared Mailpit is used by other packages at the same time: every test
// sends to its own random addresses and searches for them; nothing deletes
// messages.

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/testenv"
)

const (
	campaignID      = "saas-lifecycle"
	campaignVersion = "v1"
	fromAddress     = "journeys@lifecycle-tests.example"
	publicBaseURL   = "https://lifecycle.example/api"
)

var signerSecret = []byte("activities-test-secret")

// fixture is one test's activities wired to real servers.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	acts   *activities.Activities
	store  *crm.Store
	sender *email.Sender
	mp     *mailpit.Client
	signer email.Signer
	camp   *campaign.Campaign
	suite  testsuite.WorkflowTestSuite
}

// newFixture opens a migrated CRM on a fresh database and a sender to the
// shared test Mailpit.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	smtpAddr, apiURL := testenv.Mailpit(t)
	return newFixtureWithMail(t, smtpAddr, apiURL)
}

// newCRMFixture is a fixture for tests that send no mail: it needs no
// Mailpit (its sender points at a closed port and would fail).
func newCRMFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWithMail(t, "127.0.0.1:1", "http://127.0.0.1:1")
}

// newFixtureWithMail is newFixture with the SMTP server and Mailpit API
// given (a private Mailpit).
func newFixtureWithMail(t *testing.T, smtpAddr, apiURL string) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	dbURL := testenv.NewDatabase(t)
	store, err := crm.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(store.Close) // registered after the database: runs before the drop
	require.NoError(t, store.Migrate(ctx))

	reg := campaign.NewRegistry()
	require.NoError(t, reg.LoadEmbedded())
	camp, err := reg.Get(campaignID, campaignVersion)
	require.NoError(t, err, "the shipped campaign %s@%s", campaignID, campaignVersion)

	sender := newSender(t, smtpAddr)
	signer := email.NewSigner(signerSecret)
	f := &fixture{
		t:      t,
		ctx:    ctx,
		store:  store,
		sender: sender,
		mp:     mailpit.New(apiURL),
		signer: signer,
		camp:   camp,
		acts: &activities.Activities{
			CRM:           store,
			Mail:          sender,
			Campaigns:     reg,
			Signer:        signer,
			PublicBaseURL: publicBaseURL,
			From:          fromAddress,
		},
	}
	return f
}

func newSender(t *testing.T, smtpAddr string) *email.Sender {
	t.Helper()
	host, port, err := net.SplitHostPort(smtpAddr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	s, err := email.NewSender(email.Config{
		Host: host, Port: p, TLSMode: email.TLSNone,
		From: fromAddress, FromName: "Acme Analytics",
		Connections: 2, Timeout: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// env returns a fresh test activity environment with the activities
// registered. One per call, so concurrent callers do not share one.
func (f *fixture) env() *testsuite.TestActivityEnvironment {
	e := f.suite.NewTestActivityEnvironment()
	e.RegisterActivity(f.acts)
	return e
}

func (f *fixture) sendEmail(in activities.SendEmailInput) (activities.SendEmailResult, error) {
	f.t.Helper()
	v, err := f.env().ExecuteActivity(f.acts.SendEmail, in)
	if err != nil {
		return activities.SendEmailResult{}, err
	}
	var res activities.SendEmailResult
	require.NoError(f.t, v.Get(&res))
	return res, nil
}

// mustSend runs SendEmail and requires that it returns no error.
func (f *fixture) mustSend(in activities.SendEmailInput) activities.SendEmailResult {
	f.t.Helper()
	res, err := f.sendEmail(in)
	require.NoError(f.t, err, "SendEmail %s", in.Key)
	return res
}

// writeCRM runs a batch of CRM writes through WriteCRM, as a journey does.
func (f *fixture) writeCRM(writes ...activities.CRMWrite) (activities.WriteCRMResult, error) {
	f.t.Helper()
	v, err := f.env().ExecuteActivity(f.acts.WriteCRM, activities.WriteCRMInput{CustomerID: "test", Writes: writes})
	if err != nil {
		return activities.WriteCRMResult{}, err
	}
	var res activities.WriteCRMResult
	require.NoError(f.t, v.Get(&res))
	return res, nil
}

// errRejected stands for a write WriteCRM refused for good (listed in
// WriteCRMResult.Rejected): it will not be retried.
type errRejected struct{ reason string }

func (e errRejected) Error() string { return "rejected: " + e.reason }

// write makes one CRM write; errRejected when the CRM refused it for good.
func (f *fixture) write(w activities.CRMWrite) error {
	f.t.Helper()
	res, err := f.writeCRM(w)
	if err != nil {
		return err
	}
	if len(res.Rejected) > 0 {
		return errRejected{res.Rejected[0].Reason}
	}
	return nil
}

// requireRejected requires that a write was refused for good, and returns
// the CRM's reason.
func requireRejected(t *testing.T, err error) string {
	t.Helper()
	var r errRejected
	require.ErrorAs(t, err, &r, "want a write the CRM refused for good")
	return r.reason
}

func (f *fixture) upsertContact(c activities.Contact) error {
	f.t.Helper()
	return f.write(activities.CRMWrite{Contact: &c})
}

func (f *fixture) suppress(in activities.SuppressInput) {
	f.t.Helper()
	require.NoError(f.t, f.write(activities.CRMWrite{Suppress: &in}))
}

func (f *fixture) erase(customerID string) error {
	f.t.Helper()
	return f.write(activities.CRMWrite{Erase: &activities.EraseInput{CustomerID: customerID}})
}

// recordEvents writes events to the log and answers which were new.
func (f *fixture) recordEvents(in activities.RecordEventsInput) (activities.RecordEventsResult, error) {
	f.t.Helper()
	in.StopUnlessAllNew = true // so that the result lists the new ids
	res, err := f.writeCRM(activities.CRMWrite{Events: &in})
	if err != nil {
		return activities.RecordEventsResult{}, err
	}
	if len(res.Rejected) > 0 {
		return activities.RecordEventsResult{}, errRejected{res.Rejected[0].Reason}
	}
	return activities.RecordEventsResult{New: res.New}, nil
}

// newCustomer returns a new customer id and a recipient address no other test
// or test run uses.
func newCustomer(tag string) (id, addr string) {
	r := testenv.RandomID(6)
	return "cus_" + tag + "_" + r, tag + "-" + r + "@example.test"
}

// contactFor is a complete trial signup profile.
func contactFor(id, addr string) activities.Contact {
	return activities.Contact{
		Profile: customer.Profile{
			CustomerID: id, Email: addr, FirstName: "Ada", LastName: "Lovelace",
			Company: "Analytical Engines Ltd", Role: "CTO", CompanySize: 250,
			TimeZone: "Europe/Berlin", LeadSource: customer.LeadReferral, OwnerEmail: "owner@acme.example",
		},
		CampaignID: campaignID, CampaignVersion: campaignVersion,
	}
}

// welcomeTemplate is the template of the trial's first step.
func (f *fixture) welcomeTemplate() string {
	f.t.Helper()
	require.NotEmpty(f.t, f.camp.Trial.Steps, "campaign has no trial steps")
	return f.camp.Trial.Steps[0].Template
}

// marketingSend is the first trial email for a customer.
func (f *fixture) marketingSend(id, addr string) activities.SendEmailInput {
	step := f.camp.Trial.Steps[0]
	return activities.SendEmailInput{
		Key:        id + "/" + campaignID + "@" + campaignVersion + "/trial/" + step.ID,
		CustomerID: id, To: addr, ToName: "Ada Lovelace",
		CampaignID: campaignID, CampaignVersion: campaignVersion,
		Template: step.Template, Step: "trial/" + step.ID,
		Data: campaign.TemplateData{FirstName: "Ada", LastName: "Lovelace", Email: addr,
			Company: "Analytical Engines Ltd", Stage: string(customer.StageTrial)},
	}
}

// handoffNotice is the (transactional) sales handoff notice about customer
// id, sent to the address to.
func (f *fixture) handoffNotice(id, to string) activities.SendEmailInput {
	tpl := f.camp.Sales.NotifyTemplate
	require.NotEmpty(f.t, tpl, "campaign has no sales notify template")
	require.Equal(f.t, customer.CategoryTransactional, f.camp.Templates[tpl].Category, "template %s", tpl)
	return activities.SendEmailInput{
		// Keys never carry addresses (an erased address must not survive in
		// the ledger); the owner part only keeps keys apart in tests.
		Key:        id + "/" + campaignID + "@" + campaignVersion + "/sales/handoff/" + strings.ReplaceAll(to, "@", "-at-"),
		CustomerID: id, To: to,
		CampaignID: campaignID, CampaignVersion: campaignVersion,
		Template: tpl, Step: "sales/handoff",
		Data: campaign.TemplateData{Company: "Analytical Engines Ltd", Score: 64,
			Extra: map[string]string{
				campaign.ExtraCustomerID:    id,
				campaign.ExtraCustomerName:  "Ada Lovelace (Analytical Engines Ltd)",
				campaign.ExtraCustomerEmail: "customer@example.test",
				campaign.ExtraReasons:       "demo_requested (30), pricing_viewed (10)",
				campaign.ExtraScore:         "64",
			}},
	}
}

// messagesTo returns what Mailpit holds for exactly this recipient.
func (f *fixture) messagesTo(addr string) []mailpit.Summary {
	f.t.Helper()
	found, err := f.mp.Search(f.ctx, "to:"+addr)
	require.NoError(f.t, err)
	var out []mailpit.Summary
	for _, s := range found {
		for _, to := range s.To {
			if strings.EqualFold(to.Address, addr) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// waitForOne waits until Mailpit holds a message for addr and requires
// that it holds exactly one.
func (f *fixture) waitForOne(addr string) mailpit.Summary {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
	defer cancel()
	_, err := f.mp.WaitFor(ctx, "to:"+addr, 1)
	require.NoError(f.t, err, "no message to %s reached Mailpit", addr)
	got := f.messagesTo(addr)
	require.Len(f.t, got, 1, "messages to %s", addr)
	return got[0]
}

// requireNoMail requires that Mailpit holds nothing for addr. Sends are
// synchronous (SendEmail returns after the SMTP reply), so a message the
// activity handed over would already be there.
func (f *fixture) requireNoMail(addr string) {
	f.t.Helper()
	require.Empty(f.t, f.messagesTo(addr), "messages to %s", addr)
}

// requireAppError requires a non-retryable Temporal application error of
// the given type and returns it.
func requireAppError(t *testing.T, err error, errType string) *temporal.ApplicationError {
	t.Helper()
	require.Error(t, err)
	require.True(t, temporal.IsApplicationError(err), "not an application error: %v", err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "not an *ApplicationError: %v", err)
	require.Equal(t, errType, appErr.Type(), "error: %v", err)
	require.True(t, appErr.NonRetryable(), "error is retryable: %v", err)
	return appErr
}

// requireRetryable requires an error that Temporal retries: not a
// non-retryable application error.
func requireRetryable(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		require.False(t, appErr.NonRetryable(), "error is non-retryable: %v", err)
	}
}

// unsubscribeLink extracts the single link of a List-Unsubscribe header
// value ("<https://...>").
func unsubscribeLink(t *testing.T, header string) *url.URL {
	t.Helper()
	h := strings.TrimSpace(header)
	require.True(t, strings.HasPrefix(h, "<") && strings.HasSuffix(h, ">"), "List-Unsubscribe %q", header)
	require.Equal(t, 1, strings.Count(h, "<"), "List-Unsubscribe %q has more than one link", header)
	u, err := url.Parse(h[1 : len(h)-1])
	require.NoError(t, err)
	return u
}

// counterValue reads one counter series from a registry (0 when absent).
//
// prometheus/testutil would do this, but it needs a module
// (github.com/kylelemons/godebug) that go.mod does not list yet.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m.GetLabel(), labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// seriesCount is the number of series of a metric.
func seriesCount(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

// rowsMentioning counts, over every table of the CRM schema, the rows whose
// text form contains s (case-insensitively): where personal data could
// still be.
func (f *fixture) rowsMentioning(s string) map[string]int {
	f.t.Helper()
	rows, err := f.store.Pool().Query(f.ctx, `
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'goose%'`)
	require.NoError(f.t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(f.t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(f.t, rows.Err())
	require.NotEmpty(f.t, tables)
	found := map[string]int{}
	for _, table := range tables {
		var n int
		q := `SELECT count(*) FROM ` + quoteIdent(table) + ` t WHERE t::text ILIKE '%' || $1 || '%'`
		require.NoError(f.t, f.store.Pool().QueryRow(f.ctx, q, s).Scan(&n))
		if n > 0 {
			found[table] = n
		}
	}
	return found
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
