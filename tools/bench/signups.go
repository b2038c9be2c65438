package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/workerapp"
	"github.com/acme/lifecycle/workflows"
)

// mainStack is the in-process worker and API the signup, events, broadcast
// and cost phases share (one worker as production runs it, one API).
type mainStack struct {
	cfg  config.Config
	app  *workerapp.App
	stop func()
	srv  *httptest.Server
	api  *api.Client
	// metrics are the worker's own counters (activities.Metrics), read
	// in-process.
	metrics *prometheus.Registry
}

func (h *Harness) main(ctx context.Context) (*mainStack, error) {
	if h.ms != nil {
		return h.ms, nil
	}
	cfg, _, err := h.workerConfig("bench-"+h.id, h.dbURL, h.cfg.SMTPAddr)
	if err != nil {
		return nil, err
	}
	metrics := prometheus.NewRegistry()
	app, stop, err := h.startWorker(ctx, cfg, metrics)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(api.New(api.Options{
		Starter: workflows.Starter{Client: h.c, TaskQueue: cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: 1},
		CRM:     app.CRM,
		Signer:  email.NewSigner([]byte(cfg.UnsubscribeSecret.Value())),
		Secret:  []byte(cfg.APISecret.Value()),
		Logger:  quiet(),
	}))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	h.ms = &mainStack{cfg: cfg, app: app, stop: stop, srv: srv, metrics: metrics,
		api: &api.Client{BaseURL: srv.URL, Secret: []byte(cfg.APISecret.Value()), HTTP: &http.Client{Transport: tr, Timeout: time.Minute}}}
	return h.ms, nil
}

func (h *Harness) closeMain() {
	if h.ms != nil {
		h.ms.srv.Close()
		h.ms.stop()
		h.ms = nil
	}
}

// daytimeZone is a fixed-offset IANA zone in which it is about noon now, so
// the welcome email is not held back by the campaign's quiet hours.
func daytimeZone(now time.Time) string {
	off := 12 - now.UTC().Hour() // hours east of UTC
	switch {
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off) // POSIX sign: GMT-3 is UTC+3
	case off < 0:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
	return "UTC"
}

// signups measures signups end to end: POST /v1/signups → journey →
// CRM contact → welcome email accepted by Mailpit and marked sent in the
// ledger. Latency is from the API call to the ledger's sent_at (the SMTP
// server has accepted the message by then).
func (h *Harness) signups(ctx context.Context) error {
	n, conc := h.cfg.Signups, h.cfg.SignupConc
	ms, err := h.main(ctx)
	if err != nil {
		return err
	}
	prefix := "su-" + h.id + "-"
	domain := "su-" + h.id + ".example"
	tz := daytimeZone(time.Now())
	h.signupPrefix = prefix

	prof := filepath.Join(h.cfg.ProfileDir, "signups.cpu.pprof")
	stopProfile, err := startProfile(prof)
	if err != nil {
		return err
	}
	defer stopProfile()

	m := begin()
	starts := make([]time.Time, n)
	apiLat := make([]time.Duration, n)
	rate, err := parallel(n, conc, func(i int) error {
		id := fmt.Sprintf("%s%06d", prefix, i)
		starts[i] = time.Now()
		_, err := ms.api.Signup(ctx, workflows.Signup{
			CustomerID: id, Email: fmt.Sprintf("u%06d@%s", i, domain), FirstName: "Bench", LastName: fmt.Sprint(i),
			Company: "Bench Ltd", CompanySize: 10, TimeZone: tz, LeadSource: "cold",
		})
		apiLat[i] = time.Since(starts[i])
		return err
	})
	if err != nil {
		return err
	}

	// Wait for every welcome email to be marked sent.
	sentAt := map[string]time.Time{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(sentAt) < n && time.Now().Before(deadline) {
		rows, err := ms.app.CRM.Pool().Query(ctx, `SELECT customer_id, sent_at FROM email_log
			WHERE template = 'welcome' AND status = 'sent' AND customer_id LIKE $1`, prefix+"%")
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				rows.Close()
				return err
			}
			sentAt[id] = at
		}
		rows.Close()
		if len(sentAt) < n {
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopProfile()
	if len(sentAt) < n {
		return fmt.Errorf("only %d of %d welcome emails marked sent after 5 minutes", len(sentAt), n)
	}
	var lat []time.Duration
	last := time.Time{}
	for i := range n {
		at := sentAt[fmt.Sprintf("%s%06d", prefix, i)]
		lat = append(lat, at.Sub(starts[i]))
		if at.After(last) {
			last = at
		}
	}
	elapsed := last.Sub(m.t0)
	f := m.end(&Figure{Phase: "signups", Name: "signups end to end (API → journey → CRM contact → welcome email sent)",
		Value: float64(n) / elapsed.Seconds(), Unit: "signups/s", N: n, Elapsed: elapsed, Limit: limitNoopWF,
		Repro: fmt.Sprintf("lifecycle-bench -phases signups -signups %d -signup-conc %d", n, conc)})
	latencies(f, lat)

	// Verify: a CRM contact per signup, and one welcome email per
	// recipient in Mailpit.
	var contacts int
	if err := ms.app.CRM.Pool().QueryRow(ctx, `SELECT count(*) FROM contacts WHERE customer_id LIKE $1`, prefix+"%").Scan(&contacts); err != nil {
		return err
	}
	inMailpit, err := h.mailpitCount(ctx, domain)
	if err != nil {
		return err
	}
	f.Note = fmt.Sprintf("%d in flight; time zone %s (daytime now); CRM contacts %d/%d; Mailpit has %d/%d; API answered %.0f/s (accept p50 %s, p99 %s); CPU profile %s",
		conc, tz, contacts, n, inMailpit, n, rate, pct(apiLat, 0.5), pct(apiLat, 0.99), rel(prof))
	if contacts != n || inMailpit != n {
		h.results.note("signups: verification mismatch: contacts %d, Mailpit %d, want %d", contacts, n, inMailpit)
	}
	h.results.add(f)
	h.results.Profile = pprofTop(prof)
	if h.cfg.SignupsSerial > 0 {
		return h.serialSignups(ctx, ms, h.cfg.SignupsSerial, tz)
	}
	return nil
}

// serialSignups is the latency of a signup when no backlog is queued
// ahead of it: a few callers, each waiting for its welcome email to be
// marked sent before the next signup.
func (h *Harness) serialSignups(ctx context.Context, ms *mainStack, n int, tz string) error {
	const callers = 2
	prefix := "ss-" + h.id + "-"
	var mu sync.Mutex
	var lat []time.Duration
	m := begin()
	_, err := parallel(n, callers, func(i int) error {
		id := fmt.Sprintf("%s%06d", prefix, i)
		t0 := time.Now()
		if _, err := ms.api.Signup(ctx, workflows.Signup{CustomerID: id, Email: fmt.Sprintf("s%06d@ss-%s.example", i, h.id),
			CompanySize: 10, TimeZone: tz, LeadSource: "cold"}); err != nil {
			return err
		}
		for deadline := time.Now().Add(2 * time.Minute); ; {
			var at time.Time
			err := ms.app.CRM.Pool().QueryRow(ctx, `SELECT sent_at FROM email_log WHERE customer_id = $1 AND template = 'welcome' AND status = 'sent'`, id).Scan(&at)
			if err == nil {
				mu.Lock()
				lat = append(lat, at.Sub(t0))
				mu.Unlock()
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no welcome email sent after 2 minutes", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err != nil {
		return err
	}
	f := m.end(&Figure{Phase: "signups", Name: "signup latency without a backlog (2 callers, each waits for its welcome email)",
		Unit: "signups/s", N: n, Limit: limitNoopWF,
		Note:  "closed loop: the figure is the rate two patient callers get; p50/p99 are the intrinsic latency (ledger polled every 20 ms)",
		Repro: fmt.Sprintf("lifecycle-bench -phases signups -signups-serial %d", n)})
	f.Value = float64(n) / f.Elapsed.Seconds()
	latencies(f, lat)
	h.results.add(f)
	return nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	f := &Figure{}
	latencies(f, ds)
	if p >= 0.99 {
		return f.P99.Round(time.Millisecond)
	}
	return f.P50.Round(time.Millisecond)
}

// mailpitCount asks Mailpit how many messages are addressed to the domain.
func (h *Harness) mailpitCount(ctx context.Context, domain string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimRight(h.cfg.MailpitURL, "/")+"/api/v1/search?limit=1&query="+url.QueryEscape("to:"+domain), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var res struct {
		MessagesCount int `json:"messages_count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, err
	}
	return res.MessagesCount, nil
}

// pprofTop is `go tool pprof -top` of a profile (flat and cumulative).
func pprofTop(file string) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"tool", "pprof", "-top", "-nodecount=20", file},
		{"tool", "pprof", "-top", "-cum", "-nodecount=25", file},
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(&b, "go %s: %v\n", strings.Join(args, " "), err)
		}
		b.Write(out)
		b.WriteString("\n")
	}
	return b.String()
}
