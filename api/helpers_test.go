package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/workflows"
)

var (
	testSecret      = []byte("test-api-secret-0123456789")
	testUnsubSecret = []byte("test-unsubscribe-secret-0123456789")
)

// signal is one signal-with-start the fake Temporal received.
type signal struct {
	WorkflowID string
	Name       string
	Arg        any
	TaskQueue  string
}

// fakeTemporal is the part of client.Client the API uses; any other method
// panics (nil embedded interface).
type fakeTemporal struct {
	client.Client
	mu      sync.Mutex
	signals []signal
	// fail, when set, decides per workflow ID whether a signal fails.
	fail   func(workflowID string) error
	views  map[string]workflows.JourneyView
	health error
	// running are the workflows signal-with-start started: a plain signal
	// to any other is NotFound, as on the server.
	running map[string]bool
}

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{views: map[string]workflows.JourneyView{}, running: map[string]bool{}}
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, workflowID, _, signalName string, arg any) error {
	if f.fail != nil {
		if err := f.fail(workflowID); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running[workflowID] {
		return serviceerror.NewNotFound("workflow execution not found for ID: " + workflowID)
	}
	f.signals = append(f.signals, signal{WorkflowID: workflowID, Name: signalName, Arg: arg})
	return nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, workflowID, signalName string, signalArg any,
	options client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	if f.fail != nil {
		if err := f.fail(workflowID); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, signal{WorkflowID: workflowID, Name: signalName, Arg: signalArg, TaskQueue: options.TaskQueue})
	f.running[workflowID] = true
	return fakeRun{id: workflowID}, nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, workflowID, _, queryType string, _ ...any) (converter.EncodedValue, error) {
	if queryType != workflows.QueryState {
		return nil, errors.New("unexpected query " + queryType)
	}
	v, ok := f.views[workflowID]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + workflowID)
	}
	return jsonValue{v}, nil
}

func (f *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, f.health
}

func (f *fakeTemporal) sent() []signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signal(nil), f.signals...)
}

type fakeRun struct {
	client.WorkflowRun
	id string
}

func (r fakeRun) GetID() string    { return r.id }
func (r fakeRun) GetRunID() string { return "run-1" }

type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return true }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// harness is an API handler on a fake Temporal with a fixed clock.
type harness struct {
	t        *testing.T
	temporal *fakeTemporal
	srv      *server
	handler  http.Handler
	now      time.Time
	logs     *bytes.Buffer
	seq      int
}

func newHarness(t *testing.T, mod ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, temporal: newFakeTemporal(), now: time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	o := Options{
		Starter: workflows.Starter{Client: h.temporal, TaskQueue: "tq", CampaignID: "saas-lifecycle"},
		Signer:  email.NewSigner(testUnsubSecret),
		Secret:  testSecret,
		Logger:  slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     func() time.Time { return h.now },
	}
	for _, m := range mod {
		m(&o)
	}
	h.srv = newServer(o)
	h.handler = h.srv.logRequests(h.srv.recoverPanics(h.srv.mux))
	return h
}

// do sends a request signed at the harness's clock. The clock stands
// still, so every request is signed a second earlier than the one before:
// the same body twice must not be a replay.
func (h *harness) do(method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	h.seq++
	if h.seq > 250 {
		h.t.Fatal("harness: more than 250 signed requests at one clock reading")
	}
	return h.doAt(h.now.Add(-time.Duration(h.seq)*time.Second), method, path, contentType, body)
}

func (h *harness) doAt(ts time.Time, method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range Sign(testSecret, ts, body) {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return h.serve(req)
}

func (h *harness) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	return rec
}

func (h *harness) postJSON(path string, v any) *httptest.ResponseRecorder {
	h.t.Helper()
	var body []byte
	switch b := v.(type) {
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			h.t.Fatal(err)
		}
	}
	return h.do(http.MethodPost, path, "application/json", body)
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not JSON of %T: %v\n%s", v, err, rec.Body.String())
	}
	return v
}

func validSignup(id string) workflows.Signup {
	return workflows.Signup{CustomerID: id, Email: id + "@example.com", FirstName: "Ada", CompanySize: 10, LeadSource: "referral", TimeZone: "Europe/Berlin"}
}
