package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestTwoWorkersOneKilledLosesNothing runs two worker processes on one task
// queue, each with its own metrics port, signs up customers and sends a
// broadcast to 2,000 contacts across both, and kills with SIGKILL the
// worker sending the broadcast's current page halfway through it, while
// welcomes are going out too. The other worker must finish everything:
//
//   - both workers sent email before the kill (lifecycle_emails_total of
//     each process), so the work really was spread over two processes;
//   - every journey is in trial with its welcome sent (send ledger,
//     timeline, Mailpit);
//   - the broadcast completes with every recipient counted once and
//     reached (Sent+Duplicate = 2,000) and the page the dead worker was
//     sending retried by the survivor;
//   - nobody's email is lost: every recipient has it in Mailpit, with the
//     Message-ID of its send key;
//   - copies stay within the documented in-doubt window (docs/broadcast.md,
//     "Exactly once"; docs/journey.md, "Exactly-once email"): a second copy
//     carries the same Message-ID, its ledger row has more than one attempt,
//     its send was claimed and not recorded as sent when the worker died,
//     and there are at most SMTP_CONNECTIONS broadcast copies (the send
//     slots) and at most as many journey copies as journey sends were in
//     flight at the kill.
//
// Not parallel: like the other kill tests, two worker processes and a
// broadcast keep a 2-core machine busy.
func TestTwoWorkersOneKilledLosesNothing(t *testing.T) {
	const (
		n         = 2000 // broadcast recipients
		customers = 50   // journeys
		conns     = 4    // SMTP_CONNECTIONS per worker: the broadcast's send slots
		// A throttled broadcast (~14 s of sending) leaves time for both
		// workers to send welcomes before the kill at its halfway mark,
		// whatever the load; pages end at 400, 800, 1200 and 1600, so the
		// kill lands inside a page.
		rate     = 150
		pageSize = 400
		// Customer i < paced signs up once i*signupEvery broadcast emails
		// are out; at the halfway mark a burst signs up at once and the
		// kill follows the burst's first welcome, so that welcomes are in
		// flight; the rest sign up after the kill.
		paced       = 30
		signupEvery = 30
		burst       = 12
	)
	s := newBroadcastStack(t, map[string]string{
		"TEMPORAL_TASK_QUEUE": "workers-" + testenv.RandomID(4), "TIME_SCALE": "1",
		"SMTP_CONNECTIONS": strconv.Itoa(conns),
	})
	js := &stack{s.Stack}
	bdomain := "hzb-" + testenv.RandomID(4) + ".example"
	jdomain := "hzj-" + testenv.RandomID(4) + ".example"
	s.forgetMail(t, bdomain)
	s.forgetMail(t, jdomain)
	s.seed(t, n, bdomain)
	zone := stacktest.DaytimeZone(t)
	bin := stacktest.BuildWorker(t)

	workers := make([]*hzWorker, 2)
	for i := range workers {
		addr := freeLocalAddr(t)
		p := s.StartProcessEnv(t, bin, map[string]string{"METRICS_ADDR": addr})
		workers[i] = &hzWorker{name: fmt.Sprintf("worker %d (pid %d)", i+1, p.Cmd.Process.Pid), proc: p, metricsURL: "http://" + addr + "/metrics"}
	}
	waitAllPolling(t, s, workers)

	ctx := context.Background()
	id := "hz-" + testenv.RandomID(4)
	in := s.input(id)
	in.PageSize, in.RatePerSecond = pageSize, rate
	started := time.Now()
	run, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.NoError(t, err)

	st := js.starter()
	signup := func(i int) error {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := st.Signup(sctx, workflows.Signup{CustomerID: hzCustomer(i, jdomain), Email: hzAddress(i, jdomain),
			FirstName: "Kim", LeadSource: "cold", TimeZone: zone})
		if err != nil {
			return fmt.Errorf("signup %d: %w", i, err)
		}
		return nil
	}
	signedUp := 0
	burstErrs := make(chan error, burst)
	inBurst := map[string]bool{}

	// Run until halfway through the broadcast, signing customers up as it
	// goes, until both workers have sent email, a welcome of the burst is
	// out and one of the workers is sending a page: that one is killed.
	var (
		victim         *hzWorker
		sentBeforeKill [2]float64
	)
	stacktest.WaitForEvery(t, 2*time.Minute, 50*time.Millisecond, "halfway through the broadcast, both workers sending", func() (bool, string) {
		sent := s.broadcastSent(t, id)
		for signedUp < paced && sent >= signedUp*signupEvery {
			require.NoError(t, signup(signedUp))
			signedUp++
		}
		if sent < n/2 {
			return false, fmt.Sprintf("%d broadcast emails recorded as sent, %d signups", sent, signedUp)
		}
		for i, w := range workers {
			v, err := w.emailsSent()
			if err != nil {
				return false, err.Error()
			}
			if v == 0 {
				return false, fmt.Sprintf("%d broadcast emails sent; %s has sent nothing yet", sent, w.name)
			}
			sentBeforeKill[i] = v
		}
		if len(inBurst) == 0 {
			for i := signedUp; i < signedUp+burst; i++ {
				inBurst[hzAddress(i, jdomain)] = true
				go func() { burstErrs <- signup(i) }()
			}
			signedUp += burst
			return false, "the burst of signups just started"
		}
		out := 0
		for _, m := range s.Mails(t, "to:"+jdomain) {
			if len(m.To) == 1 && inBurst[m.To[0].Address] {
				out++
			}
		}
		if out == 0 {
			return false, "no welcome of the burst out yet"
		}
		pid, state := pageWorker(s, id)
		for _, w := range workers {
			if w.proc.Cmd.Process.Pid == pid {
				victim = w
				return true, ""
			}
		}
		return false, "the current page: " + state
	})
	for i, w := range workers {
		t.Logf("%s before the kill: %v emails sent, %s", w.name, sentBeforeKill[i], w.tasks())
	}
	require.NoError(t, victim.proc.Kill())
	killedAt := time.Since(started)
	survivor := workers[0]
	if survivor == victim {
		survivor = workers[1]
	}

	// What the dead worker may have left in doubt: sends claimed and not
	// recorded as sent (a superset: the survivor's sends in flight too).
	inFlight := s.claimedKeys(t)
	bInFlight, jInFlight := 0, 0
	for key := range inFlight {
		if strings.Contains(key, "/broadcast/") {
			bInFlight++
		} else {
			jInFlight++
		}
	}
	// A dead process starts nothing: a page it still holds was in flight.
	pid, pageState := pageWorker(s, id)
	pageInFlight := pid == victim.proc.Cmd.Process.Pid
	atKill := s.broadcastSent(t, id)
	welcomesAtKill := len(s.Mails(t, "to:"+jdomain))
	t.Logf("killed %s %s after the broadcast started: %d of %d broadcast emails recorded as sent; %d of %d customers signed up, "+
		"%d of them without their welcome in Mailpit yet; claimed and not recorded: %d broadcast, %d journey sends; the page: %s",
		victim.name, killedAt.Round(time.Millisecond), atKill, n, signedUp, customers, signedUp-welcomesAtKill,
		bInFlight, jInFlight, pageState)
	require.Less(t, atKill, n, "the kill came after the broadcast had sent everything: it tests nothing")
	require.Less(t, signedUp, customers, "every customer signed up before the kill")

	for range burst {
		require.NoError(t, <-burstErrs)
	}
	for ; signedUp < customers; signedUp++ {
		require.NoError(t, signup(signedUp))
	}

	// The dead worker's page is retried after the heartbeat timeout (20 s)
	// and waits for its claims' leases (~10 s more); its journeys' sends
	// after their start-to-close timeout (30 s) and lease (35 s).
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var p workflows.BroadcastProgress
	require.NoError(t, run.Get(rctx, &p), "the broadcast did not complete after %s was killed", victim.name)
	t.Logf("the broadcast completed %s after it started: %+v", time.Since(started).Round(time.Millisecond), p)
	require.True(t, p.Done)
	require.Equal(t, n, p.Recipients(), "every recipient counted once: Sent+Duplicate+Suppressed+Failed+Deferred")
	require.Equal(t, n, p.Sent+p.Duplicate, "every recipient of a clean segment reached: Sent+Duplicate")
	require.Equal(t, n, s.broadcastSent(t, id), "every broadcast send recorded as sent in the ledger")
	if pageInFlight {
		pid, attempt := pageRetriedBy(t, s, id)
		require.NotEmpty(t, attempt, "the page %s was sending when it died was never retried", victim.name)
		require.Equal(t, survivor.proc.Cmd.Process.Pid, pid, "the dead worker's page was retried by another process than the survivor: %s", attempt)
		t.Logf("the dead worker's page was retried by the survivor: %s", attempt)
	} else {
		t.Logf("the page %s was sending finished as it was killed; no page retry to check", victim.name)
	}

	// Every journey: its welcome recorded as sent, the journey told so, in
	// trial.
	welcomeKeys := map[int]string{}
	stacktest.WaitForEvery(t, 3*time.Minute, time.Second, "every journey in trial with its welcome sent", func() (bool, string) {
		done := 0
		var waiting []string
		for i := range customers {
			if welcomeKeys[i] != "" {
				done++
				continue
			}
			if why := s.journeyDone(ctx, i, jdomain, welcomeKeys); why != "" {
				if len(waiting) < 3 {
					waiting = append(waiting, why)
				}
				continue
			}
			done++
		}
		return done == customers, fmt.Sprintf("%d of %d journeys done; %s", done, customers, strings.Join(waiting, "; "))
	})
	t.Logf("every journey done %s after the broadcast started", time.Since(started).Round(time.Millisecond))
	survivorSent, err := survivor.emailsSent()
	require.NoError(t, err)
	t.Logf("%s, the survivor, at the end: %v emails sent, %s", survivor.name, survivorSent, survivor.tasks())

	// Mailpit stores a message before it answers the DATA command; the
	// pause lets a would-be stray copy arrive.
	time.Sleep(time.Second)
	from := s.Cfg.SMTP.From
	bCopies := s.checkCopies(t, "broadcast", bdomain, n, func(i int) (string, string) {
		return fmt.Sprintf("r%06d@%s", i, bdomain), activities.BroadcastSendKey(fmt.Sprintf("cus-%06d", i), id)
	}, from, inFlight)
	jCopies := s.checkCopies(t, "journey", jdomain, customers, func(i int) (string, string) {
		return hzAddress(i, jdomain), welcomeKeys[i]
	}, from, inFlight)
	t.Logf("extra copies (same Message-ID, sent in the crash window): %d broadcast (bound: %d send slots), %d welcomes (bound: %d journey sends in flight at the kill)",
		bCopies, conns, jCopies, jInFlight)
	require.LessOrEqual(t, bCopies, conns, "more broadcast emails in doubt than one per SMTP connection (send slot) of the dead worker")
	require.LessOrEqual(t, jCopies, jInFlight, "more welcomes sent twice than journey sends were in flight at the kill")
}

// hzWorker is one of the worker processes of TestTwoWorkersOneKilledLosesNothing.
type hzWorker struct {
	name       string
	proc       *stacktest.Process
	metricsURL string
}

// metrics reads the process's Prometheus metrics: value by series
// (`name{labels}`).
func (w *hzWorker) metrics() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s metrics: %w", w.name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s metrics: %s", w.name, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// emailsSent is the process's lifecycle_emails_total{outcome="sent"}:
// journey and broadcast emails the SMTP server accepted from it.
func (w *hzWorker) emailsSent() (float64, error) {
	m, err := w.metrics()
	if err != nil {
		return 0, err
	}
	return m[`lifecycle_emails_total{outcome="sent"}`], nil
}

// tasks sums the SDK's per-task metrics of the process: workflow tasks and
// activities it completed, by activity type.
func (w *hzWorker) tasks() string {
	m, err := w.metrics()
	if err != nil {
		return err.Error()
	}
	wft := 0.0
	acts := map[string]float64{}
	for series, v := range m {
		name, labels, _ := strings.Cut(series, "{")
		switch {
		case strings.HasPrefix(name, "temporal_workflow_task_execution_latency") && strings.HasSuffix(name, "_count"):
			wft += v
		case strings.HasPrefix(name, "temporal_activity_execution_latency") && strings.HasSuffix(name, "_count"):
			acts[labelValue(labels, "activity_type")] += v
		}
	}
	var parts []string
	for typ, v := range acts {
		parts = append(parts, fmt.Sprintf("%s %v", typ, v))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%v workflow tasks, activities: %s", wft, strings.Join(parts, ", "))
}

func labelValue(labels, name string) string {
	_, rest, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return "?"
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// freeLocalAddr returns a loopback address with a port free right now.
func freeLocalAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func hzCustomer(i int, domain string) string { return fmt.Sprintf("h%02d-%s", i, domain) }
func hzAddress(i int, domain string) string  { return fmt.Sprintf("c%02d@%s", i, domain) }

// identityPID is the process ID in a Temporal SDK identity ("pid@host@…").
func identityPID(identity string) int {
	pid, _ := strconv.Atoi(strings.SplitN(identity, "@", 2)[0])
	return pid
}

// waitAllPolling waits until every worker process polls the task queue for
// workflow and activity tasks (it has migrated the database and started).
func waitAllPolling(t *testing.T, s *broadcastStack, workers []*hzWorker) {
	t.Helper()
	queue := s.Cfg.Temporal.TaskQueue
	stacktest.WaitForEvery(t, 90*time.Second, 500*time.Millisecond, "both workers polling "+queue, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := s.Client.DescribeTaskQueue(ctx, queue, typ)
			if err != nil {
				return false, err.Error()
			}
			polling := map[int]bool{}
			for _, p := range resp.GetPollers() {
				polling[identityPID(p.GetIdentity())] = true
			}
			for _, w := range workers {
				if !polling[w.proc.Cmd.Process.Pid] {
					return false, fmt.Sprintf("%s does not poll for %s tasks", w.name, typ)
				}
			}
		}
		return true, ""
	})
}

// pageWorker returns the process ID of the worker running the broadcast's
// current page, 0 when no attempt is running, and a description.
func pageWorker(s *broadcastStack, broadcastID string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := s.Client.DescribeWorkflowExecution(ctx, workflows.BroadcastWorkflowID(broadcastID), "")
	if err != nil {
		return 0, err.Error()
	}
	// Pages run one at a time: at most one is pending.
	pending := d.GetPendingActivities()
	if len(pending) == 0 {
		return 0, "no page pending"
	}
	a := pending[0]
	desc := fmt.Sprintf("%s attempt %d %s by %q", a.GetActivityType().GetName(), a.GetAttempt(), a.GetState(), a.GetLastWorkerIdentity())
	if a.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED {
		return 0, desc
	}
	return identityPID(a.GetLastWorkerIdentity()), desc
}

// pageRetriedBy finds a page attempt after the first in the broadcast's
// history (the retry of the dead worker's page) and returns the process ID
// of the worker that ran it and a description ("" when there is none).
func pageRetriedBy(t *testing.T, s *broadcastStack, broadcastID string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := s.Client.GetWorkflowHistory(ctx, workflows.BroadcastWorkflowID(broadcastID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			return identityPID(a.GetIdentity()), fmt.Sprintf("attempt %d started by %q", a.GetAttempt(), a.GetIdentity())
		}
	}
	return 0, ""
}

// broadcastSent counts the broadcast's sends the ledger recorded as sent.
func (s *broadcastStack) broadcastSent(t *testing.T, broadcastID string) int {
	t.Helper()
	var c int
	require.NoError(t, s.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM email_log WHERE status = 'sent' AND send_key LIKE '%/broadcast/' || $1`, broadcastID).Scan(&c))
	return c
}

// claimedKeys returns the send keys claimed and not recorded as sent.
func (s *broadcastStack) claimedKeys(t *testing.T) map[string]bool {
	t.Helper()
	rows, err := s.store.Pool().Query(context.Background(), `SELECT send_key FROM email_log WHERE status = 'claimed'`)
	require.NoError(t, err)
	defer rows.Close()
	keys := map[string]bool{}
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys[k] = true
	}
	require.NoError(t, rows.Err())
	return keys
}

// journeyDone says what customer i's journey still lacks (empty: nothing):
// in trial, its welcome recorded as sent in the ledger and in its
// timeline. It notes the welcome's send key in keys when done.
func (s *broadcastStack) journeyDone(ctx context.Context, i int, domain string, keys map[int]string) string {
	id := hzCustomer(i, domain)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := workflows.State(qctx, s.Client, id)
	if err != nil {
		return id + ": " + err.Error()
	}
	if v.Stage != "trial" {
		return fmt.Sprintf("%s in stage %s", id, v.Stage)
	}
	key := fmt.Sprintf("%s/%s/saas-lifecycle@v1/trial#1/welcome", id, v.Journey)
	send, err := s.store.GetSend(qctx, key)
	if err != nil {
		return fmt.Sprintf("%s: welcome %s: %v", id, key, err)
	}
	if send.Status != "sent" {
		return fmt.Sprintf("%s: welcome %s", id, send.Status)
	}
	told := false
	for _, e := range v.Timeline {
		if e.Kind == "email" && strings.Contains(e.Detail, "welcome") &&
			(strings.HasSuffix(e.Detail, ": "+activities.SendSent) || strings.HasSuffix(e.Detail, ": "+activities.SendDuplicate)) {
			told = true
		}
	}
	if !told {
		return fmt.Sprintf("%s: the journey does not know its welcome went out (sending %q)", id, v.Sending)
	}
	keys[i] = key
	return ""
}

// checkCopies checks Mailpit for the count recipients at domain (address
// and send key of recipient i from who): each got the email, every copy
// with the Message-ID of its send key; a recipient with more than one copy
// had a send in doubt at the kill (claimed, not recorded as sent, in
// inDoubt) that was attempted again (ledger attempts > 1). It returns the
// number of extra copies.
func (s *broadcastStack) checkCopies(t *testing.T, what, domain string, count int, who func(int) (string, string), from string, inDoubt map[string]bool) int {
	t.Helper()
	by := s.delivered(t, domain)
	require.Len(t, by, count, "%s: recipients with an email in Mailpit", what)
	copies := 0
	for i := range count {
		addr, key := who(i)
		msgs := by[addr]
		require.NotEmpty(t, msgs, "%s: %s got nothing: an email was lost", what, addr)
		want := strings.Trim(email.MessageIDFor(key, from), "<>")
		for _, m := range msgs {
			require.Equal(t, want, m.MessageID, "%s: %s got an email with a foreign Message-ID: a real double send", what, addr)
		}
		if len(msgs) == 1 {
			continue
		}
		copies += len(msgs) - 1
		require.True(t, inDoubt[key], "%s: %s got %d copies, but its send %s was not in flight when the worker died", what, addr, len(msgs), key)
		send, err := s.store.GetSend(context.Background(), key)
		require.NoError(t, err)
		require.Greater(t, send.Attempts, 1, "%s: %s got %d copies without a crash in between", what, addr, len(msgs))
	}
	return copies
}
