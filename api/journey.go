package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/workflows"
)

// getJourney: GET /v1/customers/{id}/journey answers the journey's state
// query (workflows.JourneyView). A finished journey answers as long as
// Temporal retains its history; a customer without one is 404.
func (s *server) getJourney(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if workflows.ValidateCustomerID(id) != nil {
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "id", Error: "id: must be 1-128 characters of letters, digits and . _ : @ -"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.temporalTimeout)
	defer cancel()
	v, err := workflows.State(ctx, s.client, id)
	var notFound *serviceerror.NotFound
	var queryFailed *serviceerror.QueryFailed
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.As(err, &notFound):
		writeError(w, http.StatusNotFound, ErrorResponse{Field: "id", Error: "no journey for customer " + id})
	case errors.As(err, &queryFailed):
		s.log.ErrorContext(r.Context(), "journey query failed", "customer_id", id, "error", err)
		writeError(w, http.StatusInternalServerError, ErrorResponse{Error: "the journey could not answer the state query"})
	default:
		s.log.ErrorContext(r.Context(), "journey query not answered", "customer_id", id, "error", err)
		s.unavailable(w, "the journey service (Temporal, or a worker to answer the query) is unavailable; retry later")
	}
}

// healthz: GET /healthz — the process is up.
func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the answer of GET /readyz.
type Readiness struct {
	// Status is "ready", "degraded" (the CRM database is away: signups and
	// events are still accepted, unsubscribe pages may ask to retry) or
	// "unavailable" (Temporal is away: nothing can be accepted).
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"` // "temporal", "crm": "ok" or "unavailable"
}

// readyz: GET /readyz — ready while Temporal answers its health check: that
// is what signups and events need. A CRM database that does not ping makes
// the API "degraded", still 200, so that a load balancer keeps sending it
// the signups and events it can accept. Details of failures go to the log,
// not to the (public) answer.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	res := Readiness{Status: "ready", Checks: map[string]string{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	check := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.WarnContext(r.Context(), "readiness check failed", "check", name, "error", err)
				res.Checks[name] = "unavailable"
				return
			}
			res.Checks[name] = "ok"
		}()
	}
	check("temporal", func(ctx context.Context) error {
		_, err := s.client.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	})
	check("crm", func(ctx context.Context) error {
		if s.crm == nil {
			return errors.New("no CRM store configured")
		}
		return s.crm.Pool().Ping(ctx)
	})
	wg.Wait()
	switch {
	case res.Checks["temporal"] != "ok":
		res.Status = "unavailable"
	case res.Checks["crm"] != "ok":
		res.Status = "degraded"
	}
	if res.Status == "unavailable" {
		s.setRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
