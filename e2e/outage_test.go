package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/faultproxy"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// The outage tests take one server away from one worker — and only from
// it — through an in-process proxy (internal/faultproxy), while the shared
// servers stay up for the other tests. They hold the product to its
// promise: what the API answered 202 happens, once.

const (
	// pgOutage is longer than the ~30 s a journey's CRM write used to be
	// retried before the journey gave up on it.
	pgOutage = 60 * time.Second
	// smtpOutage spans several retries of a send.
	smtpOutage = 45 * time.Second
	// catchUp bounds how long after the restore everything must be there.
	// Retries back off by doubling, so a write failing since the start of
	// an outage is next tried about one outage length after the restore.
	catchUp = 150 * time.Second
	// welcomeSubject identifies the trial welcome (campaign saas-lifecycle).
	welcomeSubject = "your trial has started"
)

// newOutageStack is a stack with the production time scale and secrets of
// its own; extraEnv is laid over it.
func newOutageStack(t *testing.T, extraEnv map[string]string) *stack {
	t.Helper()
	env := map[string]string{
		"TEMPORAL_TASK_QUEUE": "outage-" + testenv.RandomID(4), "TIME_SCALE": "1",
		"API_SECRET": "outage-api-" + testenv.RandomID(8), "UNSUBSCRIBE_SECRET": "outage-unsub-" + testenv.RandomID(8),
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	return &stack{stacktest.New(t, env)}
}

// waitPolling waits until a worker polls the stack's task queue for both
// workflow and activity tasks: the worker process has migrated its
// database and started.
func (s *stack) waitPolling(t *testing.T) {
	t.Helper()
	queue := s.Cfg.Temporal.TaskQueue
	stacktest.WaitForEvery(t, 90*time.Second, time.Second, "a worker polling "+queue, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := s.Client.DescribeTaskQueue(ctx, queue, typ)
			if err != nil {
				return false, err.Error()
			}
			if len(resp.GetPollers()) == 0 {
				return false, "no " + typ.String() + " poller"
			}
		}
		return true, ""
	})
}

// proxiedURL is databaseURL with its host:port replaced by addr.
func proxiedURL(t *testing.T, databaseURL, addr string) (upstream, proxied string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	upstream = u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "5432")
	}
	u.Host = addr
	return upstream, u.String()
}

// outageCustomer is one customer of the load and what the API accepted
// for it.
type outageCustomer struct {
	id, email string
	events    []api.Event
	// signedUpAt is when its signup was sent.
	signedUpAt time.Time
	// signupOK and eventOK say what the API answered 202 to.
	signupOK bool
	eventOK  []bool
}

// TestOutagePostgresUnderLoad: signups and events go through the HTTP API
// while the worker's PostgreSQL is cut for a minute. Every request is
// answered 202 (the API needs Temporal, not the worker's database), and
// after the restore the CRM catches up with everything that was accepted:
// a contacts row per signup, an events row per event; and no email goes
// out twice.
func TestOutagePostgresUnderLoad(t *testing.T) {
	t.Parallel()
	const customers = 60
	s := newOutageStack(t, nil)
	directURL := s.Cfg.DatabaseURL.Value()
	upstream, _ := proxiedURL(t, directURL, "")
	pg := faultproxy.New(t, upstream)
	_, s.Env["DATABASE_URL"] = proxiedURL(t, directURL, pg.Addr())

	s.StartProcess(t, stacktest.BuildWorker(t))
	s.waitPolling(t)

	// The API runs as cmd/api runs it, with the direct database URL: its
	// CRM store is not what is under test.
	ctx := context.Background()
	store, err := crm.Open(ctx, directURL)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	srv := httptest.NewServer(api.New(api.Options{
		Starter: s.starter(),
		CRM:     store,
		Signer:  email.NewSigner([]byte(s.Cfg.UnsubscribeSecret.Value())),
		Secret:  []byte(s.Cfg.APISecret.Value()),
		Logger:  stacktest.QuietLogger(),
	}))
	t.Cleanup(srv.Close)
	caller := &api.Client{BaseURL: srv.URL, Secret: []byte(s.Cfg.APISecret.Value()), HTTP: &http.Client{Timeout: 30 * time.Second}}

	// The test reads the CRM directly, past the proxy.
	db, err := pgxpool.New(ctx, directURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)

	run := testenv.RandomID(4)
	domain := "pgout-" + run + ".example"
	zone := stacktest.DaytimeZone(t)
	all := make([]*outageCustomer, customers)
	for i := range all {
		id := fmt.Sprintf("pg%02d-%s", i, run)
		c := &outageCustomer{id: id, email: fmt.Sprintf("c%02d@%s", i, domain)}
		// A cold lead with 2 or 3 engagement events stays far below the
		// sales threshold: the welcome is its only email in this test.
		for n, typ := range []string{"email_opened", "pricing_viewed", "feature_used"}[:2+i%2] {
			c.events = append(c.events, api.Event{CustomerID: id, ID: fmt.Sprintf("%s-ev%d", id, n+1), Type: typ})
		}
		c.eventOK = make([]bool, len(c.events))
		all[i] = c
	}

	// The load: a customer every 850 ms, its events 1.5 s apart after its
	// signup, over about 55 s; the cut starts 8 s in and outlasts it.
	var (
		mu       sync.Mutex
		refused  []string
		wg       sync.WaitGroup
		start    = time.Now()
		cutAfter = 8 * time.Second
	)
	send := func(what string, call func(context.Context) error) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := call(ctx); err != nil {
			mu.Lock()
			refused = append(refused, fmt.Sprintf("%s: %v", what, err))
			mu.Unlock()
			return false
		}
		return true
	}
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(time.Duration(i) * 850 * time.Millisecond)))
			mu.Lock()
			c.signedUpAt = time.Now()
			mu.Unlock()
			ok := send("signup "+c.id, func(ctx context.Context) error {
				_, err := caller.Signup(ctx, workflows.Signup{CustomerID: c.id, Email: c.email, FirstName: "Pat",
					LastName: c.id, LeadSource: "cold", TimeZone: zone})
				return err
			})
			mu.Lock()
			c.signupOK = ok
			mu.Unlock()
			for n, e := range c.events {
				time.Sleep(1500 * time.Millisecond)
				e.At = time.Now()
				ok := send(fmt.Sprintf("event %s/%s (%s)", c.id, e.ID, e.Type), func(ctx context.Context) error {
					_, err := caller.Event(ctx, e)
					return err
				})
				mu.Lock()
				c.eventOK[n] = ok
				mu.Unlock()
			}
		}()
	}

	time.Sleep(time.Until(start.Add(cutAfter)))
	pg.Cut()
	cutAt := time.Now()
	time.Sleep(pgOutage)

	// The cut must have been real: no signup sent after it reached the
	// CRM. Otherwise the worker is not behind the proxy and the test would
	// prove nothing.
	mu.Lock()
	var duringCut []string
	for _, c := range all {
		if c.signedUpAt.After(cutAt) {
			duringCut = append(duringCut, c.id)
		}
	}
	mu.Unlock()
	var leaked int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE customer_id = ANY($1)`, duringCut).Scan(&leaked))
	require.Zero(t, leaked, "%d of %d customers signed up during the cut reached the CRM: the worker is not behind the proxy", leaked, len(duringCut))

	pg.Restore()
	restoredAt := time.Now()
	wg.Wait()
	t.Logf("cut PostgreSQL %s into the load for %s; %d of %d signups were sent during the cut; load done %s after the restore",
		cutAt.Sub(start).Round(time.Second), pgOutage, len(duringCut), customers, time.Since(restoredAt).Round(time.Second))
	if len(refused) > 0 {
		sort.Strings(refused)
		t.Errorf("the API answered %d requests with something other than 202 during the worker's PostgreSQL outage (it needs Temporal only):\n  %s",
			len(refused), strings.Join(refused, "\n  "))
	}

	// Everything the API accepted must reach the CRM, each welcome once.
	var missing crmGaps
	for {
		missing = crmMissing(t, db, s.Mailpit, domain, all)
		if missing.empty() || time.Since(restoredAt) > catchUp {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if missing.empty() {
		t.Logf("the CRM held every accepted signup and event, and every welcome was out, %s after the restore", time.Since(restoredAt).Round(time.Second))
	} else {
		missing.report(t, s, catchUp)
	}
	time.Sleep(3 * time.Second) // let a would-be duplicate arrive
	checkSentOnce(t, s.Stack, domain)
	// A journey that signed up during the cut: its history has the CRM
	// backlog's retries and the catch-up.
	if len(duringCut) > 0 {
		s.recordHistories(t, duringCut[0], "crm-outage")
	}
}

// crmGaps is what the CRM and Mailpit lack of what the API accepted.
type crmGaps struct {
	noContact, wrongEmail, noWelcome []string
	// noEvent lists, per customer, the event ids without a row; lostEvents
	// counts them.
	noEvent    []string
	lostEvents int
	// customers are the customers concerned, for their journeys' notes.
	customers []string
	// signups and events count what the API accepted.
	signups, events int
}

func (g crmGaps) empty() bool {
	return len(g.noContact)+len(g.wrongEmail)+g.lostEvents+len(g.noWelcome) == 0
}

// crmMissing compares the CRM and the welcomes in Mailpit with what the
// API accepted. A failed query counts as everything missing, so that it is
// retried and, at the deadline, reported.
func crmMissing(t *testing.T, db *pgxpool.Pool, mp *mailpit.Client, domain string, all []*outageCustomer) crmGaps {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	emails := map[string]string{}
	events := map[[2]string]bool{}
	welcomed := map[string]bool{}
	var queryErr error
	if rows, err := db.Query(ctx, `SELECT customer_id, email FROM contacts`); err != nil {
		queryErr = err
	} else {
		for rows.Next() {
			var id, addr string
			if err := rows.Scan(&id, &addr); err != nil {
				queryErr = err
				break
			}
			emails[id] = addr
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			queryErr = err
		}
	}
	if rows, err := db.Query(ctx, `SELECT customer_id, event_id FROM events`); err != nil {
		queryErr = err
	} else {
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				queryErr = err
				break
			}
			events[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			queryErr = err
		}
	}
	if msgs, err := mp.Search(ctx, "to:"+domain); err != nil {
		queryErr = err
	} else {
		for _, m := range msgs {
			if strings.Contains(m.Subject, welcomeSubject) {
				for _, to := range m.To {
					welcomed[to.Address] = true
				}
			}
		}
	}
	if queryErr != nil {
		t.Logf("reading the CRM or Mailpit: %v", queryErr)
	}
	var g crmGaps
	for _, c := range all {
		concerned := false
		if c.signupOK {
			g.signups++
			addr, ok := emails[c.id]
			switch {
			case !ok:
				g.noContact = append(g.noContact, c.id)
				concerned = true
			case addr != c.email:
				g.wrongEmail = append(g.wrongEmail, fmt.Sprintf("%s has %q, want %q", c.id, addr, c.email))
				concerned = true
			}
			if !welcomed[c.email] {
				g.noWelcome = append(g.noWelcome, c.email)
				concerned = true
			}
		}
		var lost []string
		for n, e := range c.events {
			if !c.eventOK[n] {
				continue
			}
			g.events++
			if !events[[2]string{c.id, e.ID}] {
				lost = append(lost, fmt.Sprintf("%s (%s)", e.ID, e.Type))
			}
		}
		if len(lost) > 0 {
			g.noEvent = append(g.noEvent, c.id+": "+strings.Join(lost, ", "))
			g.lostEvents += len(lost)
			concerned = true
		}
		if concerned {
			g.customers = append(g.customers, c.id)
		}
	}
	return g
}

// report fails the test naming every lost record, with the error notes of
// a few affected journeys (why they gave up on the writes).
func (g crmGaps) report(t *testing.T, s *stack, waited time.Duration) {
	t.Helper()
	t.Errorf("%s after PostgreSQL came back, the CRM still lacks what the API accepted with 202:\n"+
		"  %d of %d accepted signups have no contacts row: %s\n"+
		"  %d of %d accepted events have no events row: %s\n"+
		"  contacts with a wrong email: %s\n"+
		"  %d of %d customers got no welcome email: %s",
		waited, len(g.noContact), g.signups, list(g.noContact), g.lostEvents, g.events, strings.Join(g.noEvent, "; "),
		list(g.wrongEmail), len(g.noWelcome), g.signups, list(g.noWelcome))
	// The first, middle and last customer concerned: early and late in
	// the cut.
	picked := map[string]bool{}
	for _, i := range []int{0, len(g.customers) / 2, len(g.customers) - 1} {
		if i < 0 || picked[g.customers[i]] {
			continue
		}
		id := g.customers[i]
		picked[id] = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := workflows.State(ctx, s.Client, id)
		cancel()
		if err != nil {
			t.Logf("journey of %s: %v", id, err)
			continue
		}
		var notes []string
		for _, e := range v.Timeline {
			if e.Kind == "error" {
				// The SDK's error chain repeats the cause: its head says enough.
				d, _, _ := strings.Cut(e.Detail, " (type: ")
				notes = append(notes, fmt.Sprintf("%q", d))
			}
		}
		t.Logf("journey of %s (stage %s) noted errors: %s", id, v.Stage, list(notes))
	}
}

func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// TestOutageSMTPWelcomesOnce: the worker's SMTP server is cut for 45 s
// while welcomes are due (customers keep signing up). After the restore
// every customer has the welcome, once.
func TestOutageSMTPWelcomesOnce(t *testing.T) {
	t.Parallel()
	const before, during = 10, 30
	smtpAddr, _ := testenv.Mailpit(t)
	smtp := faultproxy.New(t, smtpAddr)
	host, port, err := net.SplitHostPort(smtp.Addr())
	require.NoError(t, err)
	s := newOutageStack(t, map[string]string{"SMTP_HOST": host, "SMTP_PORT": port})
	s.StartProcess(t, stacktest.BuildWorker(t))
	s.waitPolling(t)

	ctx := context.Background()
	st := s.starter()
	run := testenv.RandomID(4)
	domain := "smtpout-" + run + ".example"
	zone := stacktest.DaytimeZone(t)
	signup := func(i int) {
		t.Helper()
		id := fmt.Sprintf("sm%02d-%s", i, run)
		_, err := st.Signup(ctx, workflows.Signup{CustomerID: id, Email: fmt.Sprintf("c%02d@%s", i, domain),
			FirstName: "Sam", LeadSource: "cold", TimeZone: zone})
		require.NoError(t, err, "signup %s", id)
	}
	welcomes := func() map[string]int {
		got := map[string]int{}
		for _, m := range s.Mails(t, "to:"+domain) {
			if strings.Contains(m.Subject, welcomeSubject) {
				for _, to := range m.To {
					got[to.Address]++
				}
			}
		}
		return got
	}

	// Some welcomes out, so the worker's SMTP pool holds open connections
	// when the cut closes them.
	for i := range before {
		signup(i)
	}
	stacktest.WaitFor(t, 60*time.Second, "the first welcomes", func() (bool, string) {
		n := len(welcomes())
		return n >= 3, fmt.Sprint(n)
	})
	smtp.Cut()
	cutAt := time.Now()
	atCut := len(welcomes())
	// Welcomes fall due all through the cut.
	for i := before; i < before+during; i++ {
		signup(i)
		time.Sleep(time.Until(cutAt.Add(time.Duration(i-before+1) * time.Second)))
	}
	time.Sleep(time.Until(cutAt.Add(smtpOutage)))
	got := welcomes()
	for i := before; i < before+during; i++ {
		// Otherwise the worker is not behind the proxy and the test would
		// prove nothing.
		require.Zero(t, got[fmt.Sprintf("c%02d@%s", i, domain)], "a welcome went out during the SMTP cut")
	}
	smtp.Restore()
	restoredAt := time.Now()
	t.Logf("cut SMTP for %s with %d of %d welcomes out; %d customers signed up during the cut", smtpOutage, atCut, before, during)

	total := before + during
	deadline := restoredAt.Add(catchUp)
	for len(got) < total && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		got = welcomes()
	}
	var none []string
	for i := range total {
		if addr := fmt.Sprintf("c%02d@%s", i, domain); got[addr] == 0 {
			none = append(none, addr)
		}
	}
	if len(none) > 0 {
		t.Errorf("%s after SMTP came back, %d of %d customers have no welcome: %s", catchUp, len(none), total, list(none))
	} else {
		t.Logf("every welcome was out %s after the restore", time.Since(restoredAt).Round(time.Second))
	}
	time.Sleep(3 * time.Second) // let a would-be duplicate arrive
	checkSentOnce(t, s.Stack, domain)
	// A journey whose welcome waited through the outage: its history has
	// the send's retries.
	s.recordHistories(t, fmt.Sprintf("sm%02d-%s", before, run), "smtp-outage")
}

// checkSentOnce fails for every recipient at domain who got the same email
// (by subject) more than once — except one resend with the same
// Message-ID: the retry after an SMTP exchange whose outcome the worker
// could not know (the server accepted the message, the answer or the
// ledger write was lost), which receivers deduplicate (see
// e2e/kill_test.go). A second copy with another Message-ID is a real
// double send.
func checkSentOnce(t *testing.T, s *stacktest.Stack, domain string) {
	t.Helper()
	type key struct{ to, subject string }
	copies := map[key][]string{}
	for _, m := range s.Mails(t, "to:"+domain) {
		for _, to := range m.To {
			k := key{to.Address, m.Subject}
			copies[k] = append(copies[k], m.MessageID)
		}
	}
	var doubles []string
	resent := 0
	for k, ids := range copies {
		switch {
		case len(ids) == 1:
		case len(ids) == 2 && ids[0] == ids[1]:
			resent++
		default:
			sort.Strings(ids)
			doubles = append(doubles, fmt.Sprintf("%s got %q %d times (Message-IDs %s)", k.to, k.subject, len(ids), strings.Join(ids, ", ")))
		}
	}
	sort.Strings(doubles)
	if len(doubles) > 0 {
		t.Errorf("%d emails went out more than once:\n  %s", len(doubles), strings.Join(doubles, "\n  "))
	}
	if resent > 0 {
		t.Logf("%d emails were resent with the same Message-ID after an in-doubt SMTP exchange", resent)
	}
}
