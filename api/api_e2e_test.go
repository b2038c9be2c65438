package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/workerapp"
	"github.com/acme/lifecycle/workflows"
)

// e2e is the real stack behind an API server: the Temporal dev server,
// PostgreSQL and Mailpit of `make test`, and an in-process worker built as
// the worker command builds it (internal/workerapp), on a task queue of its
// own, against a fresh CRM database.
type e2e struct {
	cfg     config.Config
	app     *workerapp.App
	api     *api.Client
	baseURL string
	signer  email.Signer
	mailpit *mailpit.Client
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	temporalAddr := testenv.Temporal(t)
	smtpAddr, mailpitURL := testenv.Mailpit(t)
	dbURL := testenv.NewDatabase(t)
	host, port, err := net.SplitHostPort(smtpAddr)
	require.NoError(t, err)
	cfg, err := config.LoadFrom(map[string]string{
		"TEMPORAL_ADDRESS": temporalAddr, "TEMPORAL_TASK_QUEUE": "api-e2e-" + testenv.RandomID(4),
		"DATABASE_URL": dbURL, "SMTP_HOST": host, "SMTP_PORT": port,
		// One journey day is one second.
		"TIME_SCALE": "86400", "METRICS_ADDR": "", "LOG_LEVEL": "warn",
		"API_SECRET": "api-e2e-secret-" + testenv.RandomID(8), "UNSUBSCRIBE_SECRET": "api-e2e-unsub-" + testenv.RandomID(8),
	})
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: cfg.Temporal.Namespace, Logger: tlog.NewStructuredLogger(quietLogger())})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := workerapp.New(ctx, cfg, c, nil, quietLogger())
	require.NoError(t, err)
	require.NoError(t, app.Worker.Start())
	t.Cleanup(func() {
		app.Worker.Stop()
		app.Close()
	})

	signer := email.NewSigner([]byte(cfg.UnsubscribeSecret.Value()))
	srv := httptest.NewServer(api.New(api.Options{
		Starter: workflows.Starter{Client: c, TaskQueue: cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: cfg.TimeScale},
		CRM:     app.CRM,
		Signer:  signer,
		Secret:  []byte(cfg.APISecret.Value()),
		Logger:  quietLogger(),
	}))
	t.Cleanup(srv.Close)
	return &e2e{
		cfg: cfg, app: app, baseURL: srv.URL, signer: signer, mailpit: mailpit.New(mailpitURL),
		api: &api.Client{BaseURL: srv.URL, Secret: []byte(cfg.APISecret.Value())},
	}
}

// waitStage polls the journey through the API until it is in stage.
func (s *e2e) waitStage(t *testing.T, customerID, stage string, timeout time.Duration) workflows.JourneyView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := s.api.Journey(ctx, customerID)
		cancel()
		if err == nil && string(v.Stage) == stage {
			return v
		}
		if err != nil {
			last = err.Error()
		} else {
			last = string(v.Stage)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s in stage %s (last: %s)", timeout, customerID, stage, last)
	return workflows.JourneyView{}
}

// waitMail waits for an email to `to` whose subject contains subject.
func (s *e2e) waitMail(t *testing.T, to, subject string) mailpit.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		found, err := s.mailpit.Search(ctx, "to:"+to)
		if err == nil {
			for _, m := range found {
				if strings.Contains(m.Subject, subject) {
					return m
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no email to %s with %q: %v", to, subject, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestAPIEndToEnd: signup via the API → events via the API cross the
// threshold → handoff row in the CRM and the owner's email → deal_won →
// onboarding email and stage; then the one-click unsubscribe suppresses
// the address and ends the journey.
func TestAPIEndToEnd(t *testing.T) {
	s := newE2E(t)
	ctx := context.Background()
	id := "api-e2e-" + testenv.RandomID(4)
	customer := id + "@e2e.example"

	ready, err := http.Get(s.baseURL + "/readyz")
	require.NoError(t, err)
	ready.Body.Close()
	assert.Equal(t, http.StatusOK, ready.StatusCode, "Temporal and the CRM are reachable")

	// A referral CTO at a 1,500-person company: fit 50, threshold 60. The
	// last name is unique: the shared Mailpit keeps every earlier run's mail.
	res, err := s.api.Signup(ctx, workflows.Signup{
		CustomerID: id, Email: customer, FirstName: "Ada", LastName: id, Company: "Engines Ltd",
		Role: "cto", CompanySize: 1500, LeadSource: "referral", TimeZone: "Europe/Berlin",
	})
	require.NoError(t, err)
	assert.Equal(t, workflows.JourneyID(id), res.JourneyID)
	s.waitStage(t, id, "trial", 30*time.Second)
	s.waitMail(t, customer, "your trial has started")

	// trial_activated (+15) crosses the threshold; an unknown type rides
	// along with a warning and an invalid event is rejected by index.
	batch, err := s.api.Events(ctx,
		api.Event{CustomerID: id, ID: id + "-probe", Type: "api_e2e_probe", At: time.Now()},
		api.Event{CustomerID: id, Type: "login"},
		api.Event{CustomerID: id, ID: id + "-act", Type: "trial_activated", At: time.Now()},
	)
	var re *api.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusMultiStatus, re.StatusCode, string(re.Body))
	assert.Equal(t, 2, batch.Accepted)
	require.Len(t, batch.Rejected, 1)
	assert.Equal(t, api.ItemError{Index: 1, CustomerID: id, Field: "id", Error: batch.Rejected[0].Error}, batch.Rejected[0])
	require.Len(t, batch.Warnings, 1)
	assert.Equal(t, 0, batch.Warnings[0].Index)

	v := s.waitStage(t, id, "sales", 30*time.Second)
	assert.GreaterOrEqual(t, v.Score, 60)
	owner := s.waitMail(t, "sales@acme.example", "New qualified lead: Ada "+id)
	assert.Contains(t, owner.Subject, "Engines Ltd")
	handoff, err := s.app.CRM.GetHandoff(ctx, id+"/handoff/2")
	require.NoError(t, err, "handoff row written with the sales stage entry")
	assert.GreaterOrEqual(t, handoff.Score, 60)
	assert.NotEmpty(t, handoff.Reasons)

	won, err := s.api.Event(ctx, api.Event{CustomerID: id, ID: id + "-won", Type: "deal_won", At: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, 1, won.Accepted)
	assert.Empty(t, won.Warnings)
	s.waitMail(t, customer, "Here's your onboarding plan")
	v = s.waitStage(t, id, "onboarding", 30*time.Second)
	assert.Equal(t, "saas-lifecycle", v.CampaignID)

	// One-click unsubscribe, as a mail client does it (RFC 8058).
	link := s.signer.UnsubscribeURL(s.baseURL, id)
	page, err := http.Get(link)
	require.NoError(t, err)
	page.Body.Close()
	assert.Equal(t, http.StatusOK, page.StatusCode)
	suppressed, _, err := s.app.CRM.IsSuppressed(ctx, customer)
	require.NoError(t, err)
	assert.False(t, suppressed, "showing the page changes nothing")

	for range 2 { // a repeat is harmless
		resp, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	// The suppression is in the CRM when the answer arrives.
	suppressed, reason, err := s.app.CRM.IsSuppressed(ctx, customer)
	require.NoError(t, err)
	assert.True(t, suppressed)
	assert.Equal(t, crm.ReasonUnsubscribed, reason)
	v = s.waitStage(t, id, "unsubscribed", 30*time.Second)
	assert.True(t, v.MailSuppressed || v.Stage == "unsubscribed")

	// A forged link is refused.
	u, _ := url.Parse(link)
	q := u.Query()
	q.Set("c", id+"x")
	u.RawQuery = q.Encode()
	resp, err := http.Post(u.String(), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestAPIJourneyNotFound: a customer without a journey is a 404 on the
// real Temporal (serviceerror.NotFound).
func TestAPIJourneyNotFound(t *testing.T) {
	s := newE2E(t)
	_, err := s.api.Journey(context.Background(), "nobody-"+testenv.RandomID(4))
	var re *api.ResponseError
	require.True(t, errors.As(err, &re), fmt.Sprint(err))
	assert.Equal(t, http.StatusNotFound, re.StatusCode)
}
