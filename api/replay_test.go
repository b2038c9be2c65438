package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/faultproxy"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// Replay protection in the CRM database (table api_replays): what one API
// process accepted, another process on the same database — a replica, or
// the same API after a restart — refuses; while the database does not
// answer, each process still refuses replays it saw itself.

// replayDB creates a migrated test database and returns its URL.
func replayDB(t *testing.T) string {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	s := openCRM(t, dbURL)
	require.NoError(t, s.Migrate(t.Context()))
	return dbURL
}

// openCRM opens a store (its own pool, as another process would) that is
// closed when the test ends.
func openCRM(t *testing.T, dbURL string) *crm.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := crm.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// replica is an API handler on store; its clock reads at.
func replica(t *testing.T, store *crm.Store, at time.Time, mod ...func(*Options)) *harness {
	t.Helper()
	h := newHarness(t, append([]func(*Options){func(o *Options) { o.CRM = store }}, mod...)...)
	h.now = at
	// A background sweep must be over before the test's database goes.
	t.Cleanup(h.srv.shared.sweeps.Wait)
	return h
}

// signedRequest returns a function that sends the same signed request
// (same headers, same body) to a handler: a replay from the second call on.
func signedRequest(t *testing.T, method, path string, body []byte, ts time.Time) func(*harness) *httptest.ResponseRecorder {
	hd := Sign(testSecret, ts, body)
	return func(h *harness) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		for k, v := range hd {
			req.Header[k] = v
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return h.serve(req)
	}
}

func requireReplayed(t *testing.T, rec *httptest.ResponseRecorder, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, rec.Code, append(msgAndArgs, rec.Body.String())...)
	assert.Contains(t, decode[ErrorResponse](t, rec).Error, "replayed", msgAndArgs...)
}

func TestReplayRefusedByAnotherProcessOnTheSameDatabase(t *testing.T) {
	dbURL := replayDB(t)
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	signup := mustJSON(t, validSignup("c1"))
	event := mustJSON(t, Event{CustomerID: "c1", ID: "e1", Type: "login"})

	t.Run("replica", func(t *testing.T) {
		a := replica(t, openCRM(t, dbURL), now)
		b := replica(t, openCRM(t, dbURL), now)
		for _, send := range []func(*harness) *httptest.ResponseRecorder{
			signedRequest(t, http.MethodPost, "/v1/signups", signup, now.Add(-time.Second)),
			signedRequest(t, http.MethodPost, "/v1/events", event, now.Add(-time.Second)),
		} {
			rec := send(a)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			requireReplayed(t, send(b), "replay to the other replica")
			requireReplayed(t, send(a), "replay to the same replica")
		}
		assert.Len(t, a.temporal.sent(), 2)
		assert.Empty(t, b.temporal.sent(), "no replay reached Temporal through the other replica")

		// Journey reads are signed the same way.
		get := signedRequest(t, http.MethodGet, "/v1/customers/c1/journey", nil, now.Add(-2*time.Second))
		b.temporal.views["journey/c1"] = workflows.JourneyView{CustomerID: "c1"}
		require.Equal(t, http.StatusOK, get(b).Code)
		requireReplayed(t, get(a), "journey read replayed to the other replica")
	})

	t.Run("restart", func(t *testing.T) {
		store := openCRM(t, dbURL)
		before := replica(t, store, now)
		send := signedRequest(t, http.MethodPost, "/v1/signups", signup, now.Add(-3*time.Second))
		require.Equal(t, http.StatusAccepted, send(before).Code)
		before.srv.shared.sweeps.Wait()
		store.Close() // the process stops

		// Two minutes later, still within the timestamp's window.
		after := replica(t, openCRM(t, dbURL), now.Add(2*time.Minute))
		requireReplayed(t, send(after), "replay after a restart")
		assert.Empty(t, after.temporal.sent())
		// A retry signed afresh goes through.
		assert.Equal(t, http.StatusAccepted, after.postJSON("/v1/signups", validSignup("c1")).Code)
	})
}

func TestReplaySweepDeletesExpiredSignaturesNowAndThen(t *testing.T) {
	dbURL := replayDB(t)
	store := openCRM(t, dbURL)
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	h := replica(t, store, now)
	use := func(sig string, expires time.Time) {
		t.Helper()
		fresh, err := store.UseSignature(t.Context(), sig, expires)
		require.NoError(t, err)
		require.True(t, fresh)
	}
	rows := func() []string {
		t.Helper()
		r, err := store.Pool().Query(t.Context(), `SELECT signature FROM api_replays WHERE signature LIKE 'test-%' ORDER BY signature`)
		require.NoError(t, err)
		var sigs []string
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			sigs = append(sigs, s)
		}
		require.NoError(t, r.Err())
		return sigs
	}
	countAll := func() int {
		var n int
		require.NoError(t, store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM api_replays`).Scan(&n))
		return n
	}

	use("test-expired-long-ago", now.Add(-time.Hour))
	// Expired, but within the grace another replica's slower clock needs.
	use("test-expired-just-now", now.Add(-10*time.Second))
	use("test-live", now.Add(time.Hour))

	require.Equal(t, http.StatusAccepted, h.postJSON("/v1/signups", validSignup("c1")).Code)
	h.srv.shared.sweeps.Wait()
	assert.Equal(t, []string{"test-expired-just-now", "test-live"}, rows())
	assert.Equal(t, 3, countAll(), "the request's own signature is stored")

	// The next requests within a minute do not sweep again.
	use("test-expired-2", now.Add(-time.Hour))
	h.now = now.Add(30 * time.Second)
	require.Equal(t, http.StatusAccepted, h.postJSON("/v1/signups", validSignup("c1")).Code)
	h.srv.shared.sweeps.Wait()
	assert.Contains(t, rows(), "test-expired-2", "swept on every request")

	// A minute after the last sweep, the next request sweeps.
	h.now = now.Add(replaySweepEvery + replaySweepGrace + 20*time.Second)
	require.Equal(t, http.StatusAccepted, h.postJSON("/v1/signups", validSignup("c1")).Code)
	h.srv.shared.sweeps.Wait()
	assert.Equal(t, []string{"test-live"}, rows(), "the rows past their expiry and the grace period are gone")
	assert.Equal(t, 1+3, countAll(), "the three requests' signatures are live and kept")
}

func TestReplayDatabaseUnreachableFallsBackToMemory(t *testing.T) {
	dbURL := replayDB(t)
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	dead := openCRM(t, dbURL)
	dead.Close() // every query now fails at once
	a := replica(t, dead, now)
	b := replica(t, dead, now)

	send := signedRequest(t, http.MethodPost, "/v1/signups", mustJSON(t, validSignup("c1")), now.Add(-time.Second))
	rec := send(a)
	require.Equal(t, http.StatusAccepted, rec.Code, "signups keep flowing while the database is down: %s", rec.Body.String())
	requireReplayed(t, send(a), "the in-memory cache still refuses a replay to the same process")
	// The documented price: another process cannot know.
	assert.Equal(t, http.StatusAccepted, send(b).Code, "a replay to another replica is accepted during the outage")

	for range 3 {
		assert.Equal(t, http.StatusAccepted, a.postJSON("/v1/events", Event{CustomerID: "c1", ID: "e1", Type: "login"}).Code)
	}
	a.srv.shared.sweeps.Wait()
	logs := a.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "replay check: the CRM database did not answer"), "one warning per outage period, not per request:\n%s", logs)
	assert.Contains(t, logs, `"level":"WARN"`)
	assert.Contains(t, logs, "closed pool", "the warning says why")
}

func TestReplayDatabaseOutageAndRecovery(t *testing.T) {
	dbURL := replayDB(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := faultproxy.New(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	a := replica(t, openCRM(t, viaProxy.String()), now, func(o *Options) { o.ReplayTimeout = 300 * time.Millisecond })
	b := replica(t, openCRM(t, dbURL), now)

	// Up: the database decides.
	send := signedRequest(t, http.MethodPost, "/v1/signups", mustJSON(t, validSignup("c1")), now.Add(-time.Second))
	require.Equal(t, http.StatusAccepted, send(a).Code)
	requireReplayed(t, send(b))

	// Stopped (connections closed, new ones refused): accepted at once.
	proxy.Cut()
	send = signedRequest(t, http.MethodPost, "/v1/signups", mustJSON(t, validSignup("c1")), now.Add(-2*time.Second))
	start := time.Now()
	require.Equal(t, http.StatusAccepted, send(a).Code)
	assert.Less(t, time.Since(start), 2*time.Second)
	requireReplayed(t, send(a), "memory still refuses replays to the same process")
	assert.Equal(t, http.StatusAccepted, send(b).Code, "the signature did not reach the database")

	// Unreachable behind a silent network: each attempt costs at most
	// ReplayTimeout, and only one attempt per retry period is made.
	proxy.Blackhole()
	a.now = now.Add(replayRetryAfter)
	for i := range 3 {
		start := time.Now()
		require.Equal(t, http.StatusAccepted, a.postJSON("/v1/events", Event{CustomerID: "c1", ID: "e1", Type: "login"}).Code)
		limit := 2 * time.Second
		if i > 0 {
			limit = 100 * time.Millisecond // no database attempt within the period
		}
		assert.Less(t, time.Since(start), limit, "request %d", i)
	}

	// Back: after the retry period the database decides again.
	proxy.Restore()
	a.now = now.Add(2 * replayRetryAfter)
	send = signedRequest(t, http.MethodPost, "/v1/signups", mustJSON(t, validSignup("c1")), a.now.Add(-time.Second))
	require.Equal(t, http.StatusAccepted, send(a).Code)
	b.now = a.now
	requireReplayed(t, send(b), "after the outage")
	a.srv.shared.sweeps.Wait()
	logs := a.logs.String()
	assert.Contains(t, logs, "replay check: the CRM database answers again")
	assert.Equal(t, 2, strings.Count(logs, "replay check: the CRM database did not answer"), "one warning per failed period:\n%s", logs)
}
