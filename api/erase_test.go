package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/erasure"
	"github.com/acme/lifecycle/internal/testenv"
)

// eraseSteps records the erase's steps in place of Temporal, the CRM and
// the key store; the audit row goes to a real database.
type eraseSteps struct {
	mu    sync.Mutex
	steps []string
	fail  error // returned by the CRM step
}

func (e *eraseSteps) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.steps = append(e.steps, s)
}

func (e *eraseSteps) TerminateJourney(_ context.Context, id, _ string) (bool, error) {
	e.add("terminate " + id)
	return true, nil
}

func (e *eraseSteps) Erase(_ context.Context, id string) error {
	e.add("crm " + id)
	return e.fail
}

func (e *eraseSteps) Shred(_ context.Context, id string) (bool, error) {
	e.add("shred " + id)
	return true, nil
}

func newEraseHarness(t *testing.T) (*harness, *eraseSteps) {
	t.Helper()
	store, err := crm.Open(t.Context(), testenv.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Migrate(t.Context()))
	steps := &eraseSteps{}
	h := newHarness(t, func(o *Options) {
		o.Eraser = &erasure.Eraser{Journeys: steps, CRM: steps, Keys: steps, Audit: store.Pool()}
	})
	return h, steps
}

func (h *harness) deleteJSON(path, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.do(http.MethodDelete, path, "application/json", []byte(body))
}

func TestEraseRunsEveryStepInOrder(t *testing.T) {
	h, steps := newEraseHarness(t)
	rec := h.deleteJSON("/v1/customers/c-1", `{"action":"erase","customer_id":"c-1","requested_by":"ticket 42"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	res := decode[erasure.Result](t, rec)
	assert.Equal(t, erasure.JourneyTerminated, res.Journey)
	assert.Equal(t, erasure.KeyShredded, res.DataKey)
	assert.Positive(t, res.AuditID)
	assert.Equal(t, []string{"terminate c-1", "crm c-1", "shred c-1"}, steps.steps)
}

func TestEraseRefusesABodyThatDoesNotSayErase(t *testing.T) {
	h, steps := newEraseHarness(t)
	for name, tc := range map[string]struct {
		body, field string
		code        int
	}{
		"no body (a journey read's signature)": {"", "", http.StatusBadRequest},
		"a signup's body":                      {`{"customer_id":"c-1","email":"a@b.example"}`, "email", http.StatusBadRequest},
		"another action":                       {`{"action":"read","customer_id":"c-1"}`, "action", http.StatusBadRequest},
		"another customer":                     {`{"action":"erase","customer_id":"c-2"}`, "customer_id", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			rec := h.deleteJSON("/v1/customers/c-1", tc.body)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			if tc.field != "" {
				assert.Equal(t, tc.field, decode[ErrorResponse](t, rec).Field)
			}
		})
	}
	assert.Empty(t, steps.steps, "nothing was erased")
}

func TestEraseNeedsASignature(t *testing.T) {
	h, steps := newEraseHarness(t)
	req := httptest.NewRequest(http.MethodDelete, "/v1/customers/c-1", strings.NewReader(`{"action":"erase","customer_id":"c-1"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := h.serve(req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Empty(t, steps.steps)
}

func TestEraseThatFailsPartWayIsRetriable(t *testing.T) {
	h, steps := newEraseHarness(t)
	steps.fail = errors.New("database away")
	rec := h.deleteJSON("/v1/customers/c-1", `{"action":"erase","customer_id":"c-1"}`)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Equal(t, []string{"terminate c-1", "crm c-1"}, steps.steps, "the key is not destroyed before the CRM is redacted")
}

func TestEraseEventIsTheSameEraseAndNotAllowedInABatch(t *testing.T) {
	h, steps := newEraseHarness(t)
	rec := h.postJSON("/v1/events", `{"customer_id":"c-1","id":"e1","type":"erase"}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	assert.Equal(t, []string{"terminate c-1", "crm c-1", "shred c-1"}, steps.steps)
	assert.Empty(t, h.temporal.sent(), "an erase is not signalled to the journey")

	rec = h.postJSON("/v1/events", `{"events":[{"customer_id":"c-2","id":"e1","type":"erase"}]}`)
	require.Equal(t, http.StatusBadRequest, rec.Code, "a batch with nothing accepted: %s", rec.Body.String())
	res := decode[EventsResponse](t, rec)
	require.Len(t, res.Rejected, 1)
	assert.Equal(t, "type", res.Rejected[0].Field)
	assert.Len(t, steps.steps, 3, "the batch's erase did not run")
}

func TestEraseWithoutAnEraserAnswers503(t *testing.T) {
	h := newHarness(t)
	rec := h.deleteJSON("/v1/customers/c-1", `{"action":"erase","customer_id":"c-1"}`)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
