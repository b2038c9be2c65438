package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/workflows"
)

// --- authentication -------------------------------------------------------

func TestAuthMissingSignature(t *testing.T) {
	h := newHarness(t)
	for _, drop := range []string{HeaderTimestamp, HeaderSignature} {
		body := []byte(`{}`)
		req := httptest.NewRequest(http.MethodPost, "/v1/signups", bytes.NewReader(body))
		for k, v := range Sign(testSecret, h.now, body) {
			req.Header[k] = v
		}
		req.Header.Del(drop)
		req.Header.Set("Content-Type", "application/json")
		rec := h.serve(req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, drop)
		assert.Contains(t, decode[ErrorResponse](t, rec).Error, "missing")
		assert.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
	}
	assert.Empty(t, h.temporal.sent())
}

func TestAuthBadSignature(t *testing.T) {
	h := newHarness(t)
	body := mustJSON(t, validSignup("c1"))
	cases := map[string]func(http.Header){
		"other secret": func(hd http.Header) {
			for k, v := range Sign([]byte("another-secret-0123456789"), h.now, body) {
				hd[k] = v
			}
		},
		"signed other body": func(hd http.Header) {
			for k, v := range Sign(testSecret, h.now, []byte(`{"customer_id":"c2"}`)) {
				hd[k] = v
			}
		},
		"timestamp changed after signing": func(hd http.Header) {
			hd.Set(HeaderTimestamp, fmt.Sprint(h.now.Unix()+1))
		},
		"no version prefix": func(hd http.Header) {
			hd.Set(HeaderSignature, strings.TrimPrefix(hd.Get(HeaderSignature), "v1="))
		},
		"not hex":                func(hd http.Header) { hd.Set(HeaderSignature, "v1=zz") },
		"truncated":              func(hd http.Header) { hd.Set(HeaderSignature, hd.Get(HeaderSignature)[:20]) },
		"timestamp not a number": func(hd http.Header) { hd.Set(HeaderTimestamp, "yesterday") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/signups", bytes.NewReader(body))
			for k, v := range Sign(testSecret, h.now, body) {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			mutate(req.Header)
			rec := h.serve(req)
			assert.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
		})
	}
	assert.Empty(t, h.temporal.sent(), "nothing unauthenticated reaches Temporal")
}

func TestAuthStaleTimestamp(t *testing.T) {
	h := newHarness(t)
	body := mustJSON(t, validSignup("c1"))
	for _, skew := range []time.Duration{-6 * time.Minute, 6 * time.Minute, -time.Hour} {
		rec := h.doAt(h.now.Add(skew), http.MethodPost, "/v1/signups", "application/json", body)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, skew)
		assert.Contains(t, decode[ErrorResponse](t, rec).Error, "5 minutes", skew)
	}
	// Within the window either way is fine.
	for _, skew := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
		rec := h.doAt(h.now.Add(skew), http.MethodPost, "/v1/signups", "application/json", body)
		assert.Equal(t, http.StatusAccepted, rec.Code, skew)
	}
}

func TestAuthReplayRejected(t *testing.T) {
	h := newHarness(t)
	body := mustJSON(t, validSignup("c1"))
	hd := Sign(testSecret, h.now, body)
	send := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/signups", bytes.NewReader(body))
		for k, v := range hd {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		return h.serve(req)
	}
	require.Equal(t, http.StatusAccepted, send().Code)
	h.now = h.now.Add(2 * time.Minute) // still inside the window
	rec := send()
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Contains(t, decode[ErrorResponse](t, rec).Error, "replayed")
	// Upper-case hex is the same signature.
	hd.Set(HeaderSignature, "v1="+strings.ToUpper(strings.TrimPrefix(hd.Get(HeaderSignature), "v1=")))
	assert.Equal(t, http.StatusUnauthorized, send().Code)
	assert.Len(t, h.temporal.sent(), 1, "the replay did not reach Temporal")

	// The same body signed afresh (a retry) is accepted.
	assert.Equal(t, http.StatusAccepted, h.do(http.MethodPost, "/v1/signups", "application/json", body).Code)
}

func TestAuthTimestampFormats(t *testing.T) {
	h := newHarness(t)
	h.temporal.views["journey/c1"] = workflows.JourneyView{CustomerID: "c1"}
	get := func(stamp string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/customers/c1/journey", nil)
		req.Header.Set(HeaderTimestamp, stamp)
		req.Header.Set(HeaderSignature, "v1="+hex.EncodeToString(mac(testSecret, stamp, nil)))
		return h.serve(req).Code
	}
	sec := fmt.Sprint(h.now.Unix())
	// Same body, same second: the second is a replay unless the timestamp
	// has a fraction that differs (as Sign makes it).
	assert.Equal(t, http.StatusOK, get(sec))
	assert.Equal(t, http.StatusUnauthorized, get(sec))
	assert.Equal(t, http.StatusOK, get(sec+".5"))
	assert.Equal(t, http.StatusOK, get(sec+".000000001"))
	for _, bad := range []string{"-" + sec, sec + "e0", sec + ".1234567890", " " + sec, sec + ".", "0x10", "+" + sec} {
		assert.Equal(t, http.StatusUnauthorized, get(bad), bad)
	}
	// Sign adds the nanoseconds: two GETs a moment apart both pass.
	for i := range 2 {
		ts := h.now.Add(time.Duration(i+1) * time.Millisecond)
		assert.Equal(t, fmt.Sprintf("%s.%09d", sec, (i+1)*1e6), Sign(testSecret, ts, nil).Get(HeaderTimestamp))
		assert.Equal(t, http.StatusOK, h.doAt(ts, http.MethodGet, "/v1/customers/c1/journey", "", nil).Code)
	}
}

func TestReplayCacheIsBoundedAndExpires(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ReplayCacheSize = 2 })
	get := func(i int) *httptest.ResponseRecorder {
		// Different timestamps make different signatures of the same body.
		return h.doAt(h.now.Add(-time.Duration(i)*time.Second), http.MethodGet, "/v1/customers/c1/journey", "", nil)
	}
	h.temporal.views[workflows.JourneyID("c1")] = workflows.JourneyView{CustomerID: "c1"}
	assert.Equal(t, http.StatusOK, get(1).Code)
	assert.Equal(t, http.StatusOK, get(2).Code)
	full := get(3)
	assert.Equal(t, http.StatusServiceUnavailable, full.Code, "fails closed rather than forgetting a live signature")
	assert.NotEmpty(t, full.Header().Get("Retry-After"))
	// Once the first two have expired, there is room again.
	h.now = h.now.Add(SignatureTolerance + 2*time.Second)
	assert.Equal(t, http.StatusOK, h.do(http.MethodGet, "/v1/customers/c1/journey", "", nil).Code)
	assert.Equal(t, 1, h.srv.replays.len())
}

func TestSignMatchesDocumentedScheme(t *testing.T) {
	// The vectors are what docs/api.md's openssl command prints:
	// printf '%s.%s' 1700000000 '{"a":1}' | openssl dgst -sha256 -hmac secret -hex
	hd := Sign([]byte("secret"), time.Unix(1700000000, 0), []byte(`{"a":1}`))
	assert.Equal(t, "1700000000", hd.Get(HeaderTimestamp))
	assert.Equal(t, "v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686", hd.Get(HeaderSignature))
	// printf '%s.' 1700000000.5 | openssl dgst -sha256 -hmac secret -hex
	hd = Sign([]byte("secret"), time.Unix(1700000000, 5e8), nil)
	assert.Equal(t, "1700000000.500000000", hd.Get(HeaderTimestamp))
	assert.Equal(t, "v1="+hex.EncodeToString(mac([]byte("secret"), "1700000000.500000000", nil)), hd.Get(HeaderSignature))
	assert.Equal(t, "179329d168fb2f6365e78f6d4c309768c855246cebb19e17369746976804f502",
		hex.EncodeToString(mac([]byte("secret"), "1700000000.5", nil)))
}

// --- request bodies ------------------------------------------------------

func TestMalformedJSONNamesTheProblem(t *testing.T) {
	h := newHarness(t)
	cases := map[string]struct{ body, want, field string }{
		"truncated":      {`{"customer_id": "c1", "email": `, "malformed JSON", ""},
		"syntax":         {"{\n  \"customer_id\": \"c1\",\n}", "line 3, column 1", ""},
		"not an object":  {`["c1"]`, "must be a JSON object, not an array", ""},
		"trailing data":  {`{"customer_id":"c1","email":"a@b.example"} {}`, "unexpected data after the JSON object", ""},
		"empty":          {``, "request body is empty", ""},
		"wrong type":     {`{"customer_id":"c1","email":"a@b.example","company_size":"big"}`, "company_size: expected an integer, got string", "company_size"},
		"bad timestamp":  {`{"customer_id":"c1","email":"a@b.example","at":"yesterday"}`, "RFC 3339", "at"},
		"unknown field":  {`{"customer_id":"c1","email":"a@b.example","nickname":"Ada"}`, `unknown field "nickname"`, "nickname"},
		"case of a name": {`{"customer_id":"c1","Email":"a@b.example","email":"a@b.example","Nick":1}`, `unknown field "Nick"`, "Nick"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rec := h.postJSON("/v1/signups", c.body)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			e := decode[ErrorResponse](t, rec)
			assert.Contains(t, e.Error, c.want)
			assert.Equal(t, c.field, e.Field)
		})
	}
	assert.Empty(t, h.temporal.sent())
}

func TestUnknownFieldInEvent(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/events", `{"customer_id":"c1","id":"e1","type":"login","payload":{}}`)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	e := decode[ErrorResponse](t, rec)
	assert.Equal(t, "payload", e.Field)
	assert.Contains(t, e.Error, `unknown field "payload"`)
}

func TestOversizedBody(t *testing.T) {
	h := newHarness(t)
	big := func(n int) []byte {
		return []byte(`{"customer_id":"c1","email":"a@b.example","company":"` + strings.Repeat("x", n) + `"}`)
	}
	rec := h.do(http.MethodPost, "/v1/signups", "application/json", big(MaxBody))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, decode[ErrorResponse](t, rec).Error, "65536 bytes")

	// Events may be up to 1 MiB ...
	events := make([]Event, 0, 1000)
	for i := range 1000 {
		events = append(events, Event{CustomerID: "c1", ID: fmt.Sprintf("e%d", i), Type: "login",
			Properties: map[string]any{"pad": strings.Repeat("p", 500)}})
	}
	body := mustJSON(t, EventBatch{Events: events})
	require.Greater(t, len(body), MaxBody)
	require.Less(t, len(body), MaxEventsBody)
	assert.Equal(t, http.StatusAccepted, h.do(http.MethodPost, "/v1/events", "application/json", body).Code)
	// ... and not more.
	huge := append([]byte(`{"events":[{"customer_id":"c1","id":"e","type":"login","properties":{"pad":"`), bytes.Repeat([]byte("p"), MaxEventsBody)...)
	huge = append(huge, `"}}]}`...)
	rec = h.do(http.MethodPost, "/v1/events", "application/json", huge)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, decode[ErrorResponse](t, rec).Error, "1048576 bytes")
}

func TestWrongContentType(t *testing.T) {
	h := newHarness(t)
	body := mustJSON(t, validSignup("c1"))
	for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded", "application/json-seq"} {
		rec := h.do(http.MethodPost, "/v1/signups", ct, body)
		assert.Equal(t, http.StatusUnsupportedMediaType, rec.Code, ct)
		assert.Contains(t, decode[ErrorResponse](t, rec).Error, "application/json", ct)
		rec = h.do(http.MethodPost, "/v1/events", ct, []byte(`{"customer_id":"c1","id":"e1","type":"login"}`))
		assert.Equal(t, http.StatusUnsupportedMediaType, rec.Code, ct)
	}
	assert.Equal(t, http.StatusAccepted, h.do(http.MethodPost, "/v1/signups", "application/json; charset=utf-8", body).Code)
}

// --- signups -------------------------------------------------------------

func TestSignupAccepted(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/signups", validSignup("c-42"))
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	res := decode[SignupResponse](t, rec)
	assert.Equal(t, SignupResponse{CustomerID: "c-42", JourneyID: "journey/c-42", RunID: "run-1"}, res)
	sent := h.temporal.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, workflows.SignalSignup, sent[0].Name)
	assert.Equal(t, "tq", sent[0].TaskQueue)
	assert.Equal(t, validSignup("c-42"), sent[0].Arg)
}

func TestSignupValidationNamesTheField(t *testing.T) {
	h := newHarness(t)
	cases := map[string]struct {
		mutate func(*workflows.Signup)
		field  string
	}{
		"no customer id":  {func(s *workflows.Signup) { s.CustomerID = "" }, "customer_id"},
		"bad customer id": {func(s *workflows.Signup) { s.CustomerID = "a b/c" }, "customer_id"},
		"no email":        {func(s *workflows.Signup) { s.Email = "" }, "email"},
		"not an address":  {func(s *workflows.Signup) { s.Email = "ada" }, "email"},
		"no domain":       {func(s *workflows.Signup) { s.Email = "a@" }, "email"},
		"time zone":       {func(s *workflows.Signup) { s.TimeZone = "Mars/Olympus" }, "time_zone"},
		"lead source":     {func(s *workflows.Signup) { s.LeadSource = "billboard" }, "lead_source"},
		"company size":    {func(s *workflows.Signup) { s.CompanySize = -1 }, "company_size"},
		"line break":      {func(s *workflows.Signup) { s.FirstName = "Ada\r\nBcc: x@y" }, "first_name"},
		"owner email":     {func(s *workflows.Signup) { s.OwnerEmail = "Sales <sales@acme.example>" }, "owner_email"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := validSignup("c1")
			c.mutate(&s)
			rec := h.postJSON("/v1/signups", s)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			e := decode[ErrorResponse](t, rec)
			assert.Equal(t, c.field, e.Field, e.Error)
			assert.True(t, strings.HasPrefix(e.Error, c.field), e.Error)
		})
	}
	// Several problems: all are listed, the first repeated on top.
	s := validSignup("c1")
	s.Email, s.LeadSource = "nope", "billboard"
	e := decode[ErrorResponse](t, h.postJSON("/v1/signups", s))
	require.Len(t, e.Errors, 2)
	assert.Equal(t, "email", e.Field)
	assert.Equal(t, []string{"email", "lead_source"}, []string{e.Errors[0].Field, e.Errors[1].Field})
	assert.Empty(t, h.temporal.sent())
}

// --- events --------------------------------------------------------------

func TestSingleEventAccepted(t *testing.T) {
	h := newHarness(t)
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	rec := h.postJSON("/v1/events", `{"customer_id":"c1","id":"e1","type":"pricing_viewed","at":"2025-03-01T09:30:00Z","properties":{"page":"/pricing"}}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, EventsResponse{Accepted: 1, Rejected: []ItemError{}, Failed: []ItemError{}, Warnings: []ItemWarning{}}, res)
	sent := h.temporal.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, "journey/c1", sent[0].WorkflowID)
	assert.Equal(t, workflows.SignalEvent, sent[0].Name)
	assert.Equal(t, workflows.Event{ID: "e1", Type: "pricing_viewed", At: at, Properties: map[string]any{"page": "/pricing"}}, sent[0].Arg)
}

func TestSingleEventInvalid(t *testing.T) {
	h := newHarness(t)
	for body, field := range map[string]string{
		`{"customer_id":"c1","type":"login"}`:                           "id",
		`{"customer_id":"c1","id":"e1","type":" "}`:                     "type",
		`{"customer_id":"","id":"e1","type":"login"}`:                   "customer_id",
		`{"id":"e1","type":"login"}`:                                    "customer_id",
		`{"customer_id":"c1","id":"e1","type":"login","at":5}`:          "at",
		`{"customer_id":"c1","id":7,"type":"login"}`:                    "id",
		`{"customer_id":"c1","id":"e1","type":"login","x":1}`:           "x",
		`{"customer_id":"c1","id":"e1","type":"login","properties":[]}`: "properties",
	} {
		rec := h.postJSON("/v1/events", body)
		require.Equal(t, http.StatusBadRequest, rec.Code, body)
		assert.Equal(t, field, decode[ErrorResponse](t, rec).Field, body)
	}
	assert.Empty(t, h.temporal.sent())
}

func TestUnknownEventTypeAcceptedWithWarning(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/events", Event{CustomerID: "c1", ID: "e1", Type: "webinar_rsvp"})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, 1, res.Accepted)
	require.Len(t, res.Warnings, 1)
	assert.Equal(t, ItemWarning{Index: 0, Field: "type", Warning: res.Warnings[0].Warning}, res.Warnings[0])
	assert.Contains(t, res.Warnings[0].Warning, `unknown event type "webinar_rsvp"`)
	assert.Len(t, h.temporal.sent(), 1, "sent to the journey, which records it")
}

// TestBatchWithOneBadEvent asserts the documented batch semantics: the bad
// event is reported by index and field and not sent; the others are sent,
// one signal per customer; the answer is 207.
func TestBatchWithOneBadEvent(t *testing.T) {
	h := newHarness(t)
	body := `{"events": [
		{"customer_id": "a", "id": "a1", "type": "email_opened"},
		{"customer_id": "b", "id": "b1", "type": "login"},
		{"customer_id": "a", "type": "pricing_viewed"},
		{"customer_id": "a", "id": "a2", "type": "demo_requested"},
		{"customer_id": "b", "id": "b2", "type": "mystery"}
	]}`
	rec := h.postJSON("/v1/events", body)
	require.Equal(t, http.StatusMultiStatus, rec.Code, rec.Body.String())
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, 4, res.Accepted)
	require.Len(t, res.Rejected, 1)
	assert.Equal(t, 2, res.Rejected[0].Index)
	assert.Equal(t, "id", res.Rejected[0].Field)
	assert.Equal(t, "a", res.Rejected[0].CustomerID)
	assert.Empty(t, res.Failed)
	require.Len(t, res.Warnings, 1)
	assert.Equal(t, 4, res.Warnings[0].Index)

	sent := h.temporal.sent()
	require.Len(t, sent, 2, "one signal per customer")
	byID := map[string]any{}
	for _, s := range sent {
		byID[s.WorkflowID] = s.Arg
	}
	assert.Equal(t, []workflows.Event{{ID: "a1", Type: "email_opened"}, {ID: "a2", Type: "demo_requested"}}, byID["journey/a"])
	assert.Equal(t, []workflows.Event{{ID: "b1", Type: "login"}, {ID: "b2", Type: "mystery"}}, byID["journey/b"])
}

func TestBatchPerItemDecodeErrors(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/events", `{"events": [
		{"customer_id": "a", "id": "a1", "type": "login", "extra": true},
		"not an object",
		{"customer_id": "a", "id": "a2", "type": "login", "at": "soon"},
		{"customer_id": "a", "id": "a3", "type": "login"},
		{"customer_id": "a", "id": "a3", "type": "login"}
	]}`)
	require.Equal(t, http.StatusMultiStatus, rec.Code, rec.Body.String())
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, 2, res.Accepted)
	require.Len(t, res.Rejected, 3)
	assert.Equal(t, []int{0, 1, 2}, []int{res.Rejected[0].Index, res.Rejected[1].Index, res.Rejected[2].Index})
	assert.Equal(t, "extra", res.Rejected[0].Field)
	assert.Contains(t, res.Rejected[1].Error, "must be a JSON object")
	assert.Equal(t, "at", res.Rejected[2].Field)
	require.Len(t, res.Warnings, 1, "a duplicate id in the batch is pointed out")
	assert.Equal(t, ItemWarning{Index: 4, Field: "id", Warning: res.Warnings[0].Warning}, res.Warnings[0])
}

func TestBatchAllRejected(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/events", `{"events": [{"customer_id": "a"}, {"id": "x", "type": "login"}]}`)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	res := decode[EventsResponse](t, rec)
	assert.Zero(t, res.Accepted)
	assert.Len(t, res.Rejected, 2)
	assert.Empty(t, h.temporal.sent())
}

func TestBatchShape(t *testing.T) {
	h := newHarness(t)
	many := make([]Event, MaxBatch+1)
	for i := range many {
		many[i] = Event{CustomerID: "a", ID: fmt.Sprint(i), Type: "login"}
	}
	for body, want := range map[string]string{
		`{"events": []}`:                              "events: must be an array of 1 to 1000 events",
		`{"events": null}`:                            "events: must be an array of 1 to 1000 events",
		`{"events": {}}`:                              "events: expected an array",
		`{"events": [], "customer_id": 1}`:            `unknown field "customer_id"`,
		string(mustJSON(t, EventBatch{Events: many})): "at most 1000 events",
	} {
		rec := h.postJSON("/v1/events", body)
		require.Equal(t, http.StatusBadRequest, rec.Code, body)
		assert.Contains(t, decode[ErrorResponse](t, rec).Error, want)
	}
	assert.Empty(t, h.temporal.sent())
}

func TestBatchTemporalFailsForSomeCustomers(t *testing.T) {
	h := newHarness(t)
	h.temporal.fail = func(id string) error {
		if id == "journey/b" {
			return errors.New("deadline exceeded")
		}
		return nil
	}
	rec := h.postJSON("/v1/events", EventBatch{Events: []Event{
		{CustomerID: "b", ID: "b1", Type: "login"},
		{CustomerID: "a", ID: "a1", Type: "login"},
		{CustomerID: "b", ID: "b2", Type: "login"},
		{CustomerID: "a", ID: ""},
	}})
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Equal(t, "5", rec.Header().Get("Retry-After"))
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, 1, res.Accepted, "only a's event was accepted")
	require.Len(t, res.Failed, 2)
	assert.Equal(t, []int{0, 2}, []int{res.Failed[0].Index, res.Failed[1].Index})
	assert.Equal(t, "b", res.Failed[0].CustomerID)
	require.Len(t, res.Rejected, 1)
	assert.Equal(t, 3, res.Rejected[0].Index)
	assert.NotContains(t, rec.Body.String(), "deadline exceeded", "internal errors stay in the log")
}

// --- Temporal unreachable ------------------------------------------------

func TestTemporalUnreachableAnswers503(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	h := newHarness(t, func(o *Options) {
		o.Starter.Client = c
		o.TemporalTimeout = 2 * time.Second
		o.RetryAfter = 7 * time.Second
	})
	check := func(rec *httptest.ResponseRecorder, what string) {
		t.Helper()
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, what+": "+rec.Body.String())
		assert.Equal(t, "7", rec.Header().Get("Retry-After"), what)
	}
	check(h.postJSON("/v1/signups", validSignup("c1")), "signup")
	check(h.postJSON("/v1/events", Event{CustomerID: "c1", ID: "e1", Type: "login"}), "event")
	rec := h.postJSON("/v1/events", EventBatch{Events: []Event{{CustomerID: "c1", ID: "e1", Type: "login"}, {CustomerID: "c2", ID: "e1", Type: "login"}}})
	check(rec, "batch")
	res := decode[EventsResponse](t, rec)
	assert.Zero(t, res.Accepted)
	assert.Len(t, res.Failed, 2)
	check(h.do(http.MethodGet, "/v1/customers/c1/journey", "", nil), "journey")
	check(h.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil)), "readyz")
	assert.Contains(t, decode[ErrorResponse](t, h.postJSON("/v1/signups", validSignup("c2"))).Error, "retry")
}

// --- journey -------------------------------------------------------------

func TestJourney(t *testing.T) {
	h := newHarness(t)
	h.temporal.views["journey/c1"] = workflows.JourneyView{CustomerID: "c1", Stage: "sales", Score: 65, Threshold: 60}
	rec := h.do(http.MethodGet, "/v1/customers/c1/journey", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	v := decode[workflows.JourneyView](t, rec)
	assert.Equal(t, "sales", string(v.Stage))
	assert.Equal(t, 65, v.Score)

	rec = h.do(http.MethodGet, "/v1/customers/nobody/journey", "", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Equal(t, "id", decode[ErrorResponse](t, rec).Field)

	rec = h.do(http.MethodGet, "/v1/customers/"+url.PathEscape("a b")+"/journey", "", nil)
	assert.Equal(t, http.StatusBadRequest, rec.Code)

	// Unauthenticated reads are refused too.
	assert.Equal(t, http.StatusUnauthorized, h.serve(httptest.NewRequest(http.MethodGet, "/v1/customers/c1/journey", nil)).Code)
}

// --- unsubscribe ---------------------------------------------------------

func TestUnsubscribePageEscapesInput(t *testing.T) {
	h := newHarness(t)
	signer := email.NewSigner(testUnsubSecret)
	evil := `"><script>alert(1)</script>`
	q := url.Values{"c": {evil}, "t": {signer.Token(evil)}}
	rec := h.serve(httptest.NewRequest(http.MethodGet, "/v1/unsubscribe?"+q.Encode(), nil))
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	assert.NotContains(t, body, "<script>")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, body, `<form method="post"`)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
	assert.Empty(t, h.temporal.sent(), "GET changes nothing")

	// A bad token: 403 and no echo at all.
	q.Set("t", "bad")
	rec = h.serve(httptest.NewRequest(http.MethodGet, "/v1/unsubscribe?"+q.Encode(), nil))
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.NotContains(t, rec.Body.String(), "script")

	rec = h.serve(httptest.NewRequest(http.MethodGet, "/v1/unsubscribe?c=c1", nil))
	assert.Equal(t, http.StatusBadRequest, rec.Code)
}

func TestUnsubscribePostBadToken(t *testing.T) {
	h := newHarness(t)
	for _, target := range []string{
		"/v1/unsubscribe?c=c1&t=bad",
		"/v1/unsubscribe?c=c1&t=" + email.NewSigner([]byte("another-secret-0123456789")).Token("c1"),
		"/v1/unsubscribe?c=c2&t=" + email.NewSigner(testUnsubSecret).Token("c1"),
	} {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := h.serve(req)
		assert.Equal(t, http.StatusForbidden, rec.Code, target)
	}
	assert.Empty(t, h.temporal.sent())
}

// Without the CRM (down, or not configured) an unsubscribe still takes
// effect through the customer's journey, which suppresses the address (its
// CRM write waits for the database) and cancels pending sends. Only when
// no journey takes the event is the answer 503: nothing would record it.
func TestUnsubscribePostWithoutCRMGoesThroughTheJourney(t *testing.T) {
	h := newHarness(t)
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/unsubscribe?c=c1&t="+email.NewSigner(testUnsubSecret).Token("c1"),
			strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return h.serve(req)
	}
	h.temporal.running[workflows.JourneyID("c1")] = true
	rec := post()
	assert.Equal(t, http.StatusOK, rec.Code)
	sent := h.temporal.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, workflows.SignalEvent, sent[0].Name)
	assert.Equal(t, "unsubscribe", sent[0].Arg.(workflows.Event).Type)

	// The journey has ended: nothing would record the unsubscribe.
	h.temporal.fail = func(string) error {
		return &serviceerror.WorkflowExecutionAlreadyStarted{Message: "completed"}
	}
	delete(h.temporal.running, workflows.JourneyID("c1"))
	rec = post()
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}

// --- health, logs --------------------------------------------------------

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	rec := h.serve(httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	rec = h.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "no CRM: signups and events are still accepted")
	r := decode[Readiness](t, rec)
	assert.Equal(t, "degraded", r.Status)
	assert.Equal(t, map[string]string{"temporal": "ok", "crm": "unavailable"}, r.Checks)

	h.temporal.health = errors.New("connection refused")
	rec = h.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "no Temporal: nothing can be accepted")
	assert.Equal(t, "unavailable", decode[Readiness](t, rec).Status)
}

func TestLogsHoldNoSecrets(t *testing.T) {
	h := newHarness(t)
	body := mustJSON(t, validSignup("c1"))
	hd := Sign(testSecret, h.now, body)
	req := httptest.NewRequest(http.MethodPost, "/v1/signups", bytes.NewReader(body))
	for k, v := range hd {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	require.Equal(t, http.StatusAccepted, h.serve(req).Code)
	token := email.NewSigner(testUnsubSecret).Token("c1")
	h.serve(httptest.NewRequest(http.MethodGet, "/v1/unsubscribe?c=c1&t="+token, nil))

	logs := h.logs.String()
	assert.Contains(t, logs, `"route":"POST /v1/signups"`)
	assert.Contains(t, logs, `"status":202`)
	for _, secret := range []string{string(testSecret), strings.TrimPrefix(hd.Get(HeaderSignature), "v1="), token, "c1@example.com"} {
		assert.NotContains(t, logs, secret)
	}
}

func TestClientSignsAndDecodes(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Now = nil })
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, Secret: testSecret}
	ctx := t.Context()

	res, err := c.Signup(ctx, validSignup("c1"))
	require.NoError(t, err)
	assert.Equal(t, "journey/c1", res.JourneyID)

	_, err = c.Signup(ctx, workflows.Signup{CustomerID: "c1"})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	assert.Equal(t, "email", re.Field)

	ev, err := c.Events(ctx, Event{CustomerID: "c1", ID: "e1", Type: "login"}, Event{CustomerID: "c1"})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusMultiStatus, re.StatusCode)
	assert.Equal(t, 1, ev.Accepted)
	assert.Len(t, ev.Rejected, 1)

	one, err := c.Event(ctx, Event{CustomerID: "c1", ID: "e2", Type: "login"})
	require.NoError(t, err)
	assert.Equal(t, 1, one.Accepted)

	_, err = c.Journey(ctx, "c1")
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusNotFound, re.StatusCode)

	bad := &Client{BaseURL: srv.URL, Secret: []byte("wrong-secret-0123456789")}
	_, err = bad.Signup(ctx, validSignup("c1"))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusUnauthorized, re.StatusCode)
}

func TestNewRefusesMisconfiguration(t *testing.T) {
	assert.Panics(t, func() { New(Options{Starter: workflows.Starter{Client: newFakeTemporal()}}) })
	assert.Panics(t, func() { New(Options{Secret: testSecret}) })
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestTemporalHangingAnswers503: a Temporal that accepts connections but
// never answers costs a caller at most Options.TemporalTimeout.
func TestTemporalHangingAnswers503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn) // held open, never answered
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	c, err := client.NewLazyClient(client.Options{HostPort: ln.Addr().String(), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	h := newHarness(t, func(o *Options) {
		o.Starter.Client = c
		o.TemporalTimeout = time.Second
	})
	start := time.Now()
	rec := h.postJSON("/v1/events", Event{CustomerID: "c1", ID: "e1", Type: "login"})
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Less(t, time.Since(start), 5*time.Second)
}
