package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/workerapp"
	"github.com/acme/lifecycle/workflows"
)

// e2e is the real stack behind an API server: the Temporal dev server,
// PostgreSQL and Mailpit of `make test`, and an in-process worker built as
// the worker command builds it (internal/workerapp), on a task queue of its
// own, against a fresh CRM database.
type e2e struct {
	*stacktest.Stack
	app     *workerapp.App
	api     *api.Client
	baseURL string
	signer  email.Signer
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	st := stacktest.New(t, map[string]string{
		"TEMPORAL_TASK_QUEUE": "api-e2e-" + testenv.RandomID(4),
		// One journey day is one second.
		"TIME_SCALE": "86400",
		"API_SECRET": "api-e2e-secret-" + testenv.RandomID(8), "UNSUBSCRIBE_SECRET": "api-e2e-unsub-" + testenv.RandomID(8),
	})
	cfg := st.Cfg
	app := st.StartWorker(t)

	signer := email.NewSigner([]byte(cfg.UnsubscribeSecret.Value()))
	srv := httptest.NewServer(api.New(api.Options{
		Starter: workflows.Starter{Client: st.Client, TaskQueue: cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: cfg.TimeScale},
		CRM:     app.CRM,
		Signer:  signer,
		Secret:  []byte(cfg.APISecret.Value()),
		Logger:  stacktest.QuietLogger(),
	}))
	t.Cleanup(srv.Close)
	return &e2e{
		Stack: st, app: app, baseURL: srv.URL, signer: signer,
		api: &api.Client{BaseURL: srv.URL, Secret: []byte(cfg.APISecret.Value())},
	}
}

// waitStage polls the journey through the API until it is in stage.
func (s *e2e) waitStage(t *testing.T, customerID, stage string, timeout time.Duration) workflows.JourneyView {
	t.Helper()
	var v workflows.JourneyView
	stacktest.WaitFor(t, timeout, customerID+" in stage "+stage, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		v, err = s.api.Journey(ctx, customerID)
		if err != nil {
			return false, err.Error()
		}
		return string(v.Stage) == stage, string(v.Stage)
	})
	return v
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
	_ = ready.Body.Close()
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
	s.WaitMail(t, customer, "your trial has started", 30*time.Second)

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
	owner := s.WaitMail(t, "sales@acme.example", "New qualified lead: Ada "+id, 30*time.Second)
	assert.Contains(t, owner.Subject, "Engines Ltd")
	handoff, err := s.app.CRM.GetHandoff(ctx, id+"/"+v.Journey+"/handoff/2")
	require.NoError(t, err, "handoff row written with the sales stage entry")
	assert.GreaterOrEqual(t, handoff.Score, 60)
	assert.NotEmpty(t, handoff.Reasons)

	won, err := s.api.Event(ctx, api.Event{CustomerID: id, ID: id + "-won", Type: "deal_won", At: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, 1, won.Accepted)
	assert.Empty(t, won.Warnings)
	s.WaitMail(t, customer, "Here's your onboarding plan", 30*time.Second)
	v = s.waitStage(t, id, "onboarding", 30*time.Second)
	assert.Equal(t, "saas-lifecycle", v.CampaignID)

	// One-click unsubscribe, as a mail client does it (RFC 8058).
	link := s.signer.UnsubscribeURL(s.baseURL, id)
	page, err := http.Get(link)
	require.NoError(t, err)
	_ = page.Body.Close()
	assert.Equal(t, http.StatusOK, page.StatusCode)
	suppressed, _, err := s.app.CRM.IsSuppressed(ctx, customer)
	require.NoError(t, err)
	assert.False(t, suppressed, "showing the page changes nothing")

	for range 2 { // a repeat is harmless
		resp, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	// The suppression is in the CRM when the answer arrives.
	suppressed, reason, err := s.app.CRM.IsSuppressed(ctx, customer)
	require.NoError(t, err)
	assert.True(t, suppressed)
	assert.Equal(t, crm.ReasonUnsubscribed, reason)
	v = s.waitStage(t, id, "unsubscribed", 30*time.Second)
	assert.True(t, v.MailSuppressed || v.Stage == "unsubscribed")

	// The journey has ended: a late event is refused and starts no new
	// journey (which would show the customer as pending again).
	_, err = s.api.Event(ctx, api.Event{CustomerID: id, ID: id + "-late", Type: "login", At: time.Now()})
	var refused *api.ResponseError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, http.StatusConflict, refused.StatusCode)
	assert.Equal(t, "customer_id", refused.Field)
	_, err = s.api.Events(ctx, api.Event{CustomerID: id, ID: id + "-late2", Type: "login", At: time.Now()})
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, http.StatusBadRequest, refused.StatusCode, "every event of the batch refused")
	var late api.EventsResponse
	require.NoError(t, json.Unmarshal(refused.Body, &late))
	require.Len(t, late.Rejected, 1)
	assert.Contains(t, late.Rejected[0].Error, "journey has ended")
	v = s.waitStage(t, id, "unsubscribed", 5*time.Second)
	assert.Equal(t, "unsubscribed", string(v.Stage), "still the ended journey")

	// A forged link is refused.
	u, _ := url.Parse(link)
	q := u.Query()
	q.Set("c", id+"x")
	u.RawQuery = q.Encode()
	resp, err := http.Post(u.String(), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	require.NoError(t, err)
	_ = resp.Body.Close()
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
