package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// broadcastStack is one broadcast test's view of the real servers (see
// stacktest.Stack) and its CRM, which the broadcast tests seed directly.
type broadcastStack struct {
	*stacktest.Stack
	store *crm.Store
}

func newBroadcastStack(tb testing.TB, extra map[string]string) *broadcastStack {
	tb.Helper()
	env := map[string]string{"TEMPORAL_TASK_QUEUE": "broadcast-" + testenv.RandomID(4)}
	for k, v := range extra {
		env[k] = v
	}
	st := stacktest.New(tb, env)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := crm.Open(ctx, st.Cfg.DatabaseURL.Value())
	require.NoError(tb, err)
	tb.Cleanup(store.Close)
	require.NoError(tb, store.Migrate(ctx))
	return &broadcastStack{Stack: st, store: store}
}

// seed writes n contacts with unique addresses at domain straight into the
// CRM with COPY (the broadcast reads the CRM; no journeys needed).
func (s *broadcastStack) seed(tb testing.TB, n int, domain string) {
	tb.Helper()
	rows := make([][]any, n)
	for i := range n {
		rows[i] = []any{fmt.Sprintf("cus-%06d", i), fmt.Sprintf("r%06d@%s", i, domain), "Kim", fmt.Sprint(i),
			"Example Corp", true, crm.StageActive, 10, "UTC", crm.LeadReferral}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	copied, err := s.store.Pool().CopyFrom(ctx, pgx.Identifier{"contacts"},
		[]string{"customer_id", "email", "first_name", "last_name", "company", "consent", "stage", "score", "time_zone", "lead_source"},
		pgx.CopyFromRows(rows))
	require.NoError(tb, err)
	require.EqualValues(tb, n, copied)
}

func (s *broadcastStack) input(id string) workflows.BroadcastInput {
	return workflows.BroadcastInput{BroadcastID: id, CampaignID: "saas-lifecycle", Template: "holiday_new_year",
		Segment: workflows.BroadcastSegment{Stages: []string{crm.StageActive}}}
}

// delivered reads every message to the domain from Mailpit, by recipient.
func (s *broadcastStack) delivered(tb testing.TB, domain string) map[string][]mailpit.Summary {
	tb.Helper()
	// Mailpit pages searches with offsets: reading 10,000 results out of a
	// large store takes a while.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	msgs, err := s.Mailpit.Search(ctx, "to:"+domain)
	require.NoError(tb, err)
	by := map[string][]mailpit.Summary{}
	for _, m := range msgs {
		require.Len(tb, m.To, 1)
		by[m.To[0].Address] = append(by[m.To[0].Address], m)
	}
	return by
}

// forgetMail deletes the messages to domain from the shared Mailpit when
// the test passed (a failed test keeps them for a look), so that the test
// stack's searches stay fast for everybody.
func (s *broadcastStack) forgetMail(tb testing.TB, domain string) {
	tb.Cleanup(func() {
		if tb.Failed() {
			return
		}
		s.deleteMail(tb, domain)
	})
}

func (s *broadcastStack) deleteMail(tb testing.TB, domain string) {
	u := strings.TrimRight(os.Getenv("MAILPIT_API_URL"), "/")
	if u == "" {
		u = "http://127.0.0.1:8025"
	}
	req, err := http.NewRequest(http.MethodDelete, u+"/api/v1/search?query="+url.QueryEscape("to:"+domain), nil)
	require.NoError(tb, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Logf("delete the test's mail from Mailpit: %v", err)
		return
	}
	_ = resp.Body.Close()
}

func (s *broadcastStack) sentCount(tb testing.TB) int {
	tb.Helper()
	var n int
	require.NoError(tb, s.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM email_log WHERE status = 'sent'`).Scan(&n))
	return n
}

// TestBroadcastDeliversEachEmailOnce sends a broadcast to 1,000 contacts
// through an in-process worker and checks Mailpit: 1,000 emails, one per
// recipient, each with its own Message-ID derived from its send key, and
// the one-click unsubscribe headers.
func TestBroadcastDeliversEachEmailOnce(t *testing.T) {
	const n = 1000
	s := newBroadcastStack(t, nil)
	domain := "bc-" + testenv.RandomID(4) + ".example"
	s.forgetMail(t, domain)
	s.seed(t, n, domain)
	s.StartWorker(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id := "e2e-" + testenv.RandomID(4)
	in := s.input(id)
	in.PageSize = 300
	started := time.Now()
	run, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.NoError(t, err)
	require.Equal(t, workflows.BroadcastWorkflowID(id), run.GetID())

	// A second start of the same broadcast is refused while it runs.
	_, err = workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.ErrorIs(t, err, workflows.ErrBroadcastAlreadyStarted)

	var p workflows.BroadcastProgress
	require.NoError(t, run.Get(ctx, &p))
	elapsed := time.Since(started)
	t.Logf("broadcast to %d recipients done in %s (%.0f emails/s): %+v", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), p)
	require.True(t, p.Done)
	require.Equal(t, n, p.Sent)
	require.Equal(t, n, p.Recipients())
	require.Equal(t, 4, p.Pages) // 300, 300, 300, 100
	require.Equal(t, fmt.Sprintf("cus-%06d", n-1), p.Cursor)

	got, err := workflows.GetBroadcastProgress(ctx, s.Client, id)
	require.NoError(t, err)
	require.Equal(t, p.Sent, got.Sent)
	require.True(t, got.Done)

	// And after it completed, too: a broadcast ID sends once.
	_, err = workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.ErrorIs(t, err, workflows.ErrBroadcastAlreadyStarted)
	require.Contains(t, err.Error(), "choose a new ID")

	stacktest.WaitForEvery(t, 30*time.Second, 100*time.Millisecond, "all emails in Mailpit", func() (bool, string) {
		c := len(s.delivered(t, domain))
		return c == n, fmt.Sprint(c)
	})
	time.Sleep(time.Second) // let a would-be duplicate arrive
	by := s.delivered(t, domain)
	require.Len(t, by, n)
	perMessageID := map[string]int{}
	for i := range n {
		addr := fmt.Sprintf("r%06d@%s", i, domain)
		msgs := by[addr]
		require.Len(t, msgs, 1, "%s got %d emails", addr, len(msgs))
		key := activities.BroadcastSendKey(fmt.Sprintf("cus-%06d", i), id)
		require.Equal(t, strings.Trim(email.MessageIDFor(key, s.Cfg.SMTP.From), "<>"), msgs[0].MessageID)
		perMessageID[msgs[0].MessageID]++
	}
	require.Len(t, perMessageID, n, "every email has its own Message-ID")

	// Marketing mail: the one-click unsubscribe headers are there.
	h, err := s.Mailpit.Headers(ctx, by["r000042@"+domain][0].ID)
	require.NoError(t, err)
	require.Contains(t, http.Header(h).Get("List-Unsubscribe"), "/v1/unsubscribe?c=cus-000042")
	require.Equal(t, "List-Unsubscribe=One-Click", http.Header(h).Get("List-Unsubscribe-Post"))
	require.Equal(t, id, http.Header(h).Get("X-Broadcast"))
	require.Equal(t, n, s.sentCount(t))
}

// TestBroadcastWorkerKilledThreeTimesLosesNothing runs the worker as a
// separate process and kills it with SIGKILL three times during a
// broadcast to 5,000 recipients, starting another one after each kill.
// Every recipient must get the email, with the Message-ID of its send key.
//
// A crash can leave messages in doubt: accepted by the SMTP server, not yet
// recorded as sent. The page's retry sends them again with the same
// Message-ID (receivers deduplicate it). A sender starts its next message
// only once the ledger recorded the previous one, so that is at most one
// message per SMTP connection per crash: more copies than that, a second
// copy without a crash in between (ledger attempts 1) or a copy with
// another Message-ID fail the test.
func TestBroadcastWorkerKilledThreeTimesLosesNothing(t *testing.T) {
	const (
		n     = 5000
		kills = 3
		conns = 4
	)
	s := newBroadcastStack(t, map[string]string{"SMTP_CONNECTIONS": strconv.Itoa(conns)})
	domain := "bck-" + testenv.RandomID(4) + ".example"
	s.forgetMail(t, domain)
	s.seed(t, n, domain)
	bin := stacktest.BuildWorker(t)
	worker := s.StartProcess(t, bin)

	// Each kill costs up to the heartbeat timeout (20 s) before the page
	// is retried, and then the rest of the dead attempt's leases (~10 s).
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	id := "kill-" + testenv.RandomID(4)
	in := s.input(id)
	in.PageSize = 500
	started := time.Now()
	run, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.NoError(t, err)

	for k := 1; k <= kills; k++ {
		// Killed while sending: at 1/4, 2/4 and 3/4 of the emails.
		target := k * n / (kills + 1)
		stacktest.WaitForEvery(t, 90*time.Second, 50*time.Millisecond,
			fmt.Sprintf("%d emails recorded as sent before kill %d", target, k), func() (bool, string) {
				c := s.sentCount(t)
				return c >= target, fmt.Sprint(c)
			})
		require.NoError(t, worker.Kill())
		atKill := s.sentCount(t)
		t.Logf("kill %d after %s with %d of %d emails recorded as sent", k, time.Since(started).Round(time.Millisecond), atKill, n)
		require.Less(t, atKill, n, "kill %d came too late to test anything", k)
		worker = s.StartProcess(t, bin)
	}

	var p workflows.BroadcastProgress
	require.NoError(t, run.Get(ctx, &p))
	t.Logf("the broadcast finished %s after it started: %+v", time.Since(started).Round(time.Millisecond), p)
	require.True(t, p.Done)
	require.Equal(t, n, p.Recipients(), "every recipient counted once")
	require.Equal(t, n, p.Sent+p.Duplicate)
	require.Equal(t, n, s.sentCount(t))

	// Mailpit stores a message before it answers the DATA command: the
	// emails are there; the pause lets a would-be stray copy arrive.
	time.Sleep(time.Second)
	require.GreaterOrEqual(t, s.mailpitCount(t, domain), n)
	by := s.delivered(t, domain)
	copies, twice := 0, 0
	for i := range n {
		addr := fmt.Sprintf("r%06d@%s", i, domain)
		msgs := by[addr]
		require.NotEmpty(t, msgs, "%s got nothing: an email was lost", addr)
		key := activities.BroadcastSendKey(fmt.Sprintf("cus-%06d", i), id)
		want := strings.Trim(email.MessageIDFor(key, s.Cfg.SMTP.From), "<>")
		for _, m := range msgs {
			require.Equal(t, want, m.MessageID, "%s got an email with a foreign Message-ID: a real double send", addr)
		}
		if len(msgs) == 1 {
			continue
		}
		copies += len(msgs) - 1
		twice++
		send, err := s.store.GetSend(ctx, key)
		require.NoError(t, err)
		require.Greater(t, send.Attempts, 1, "%s got %d emails without a crash in between", addr, len(msgs))
	}
	t.Logf("%d extra copies to %d of %d recipients (same Message-ID) after %d kills; the bound is %d connections x %d kills = %d",
		copies, twice, n, kills, conns, kills, conns*kills)
	require.LessOrEqual(t, copies, conns*kills, "more emails in doubt than one per SMTP connection per crash")
}
