package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/workflows"
)

// The cases of the issue "the API answers 202 to what can never be stored
// or sent": each one is refused with a 400 that names the field, and
// nothing reaches Temporal.

func TestSignupRefusesWhatCannotBeStoredOrSent(t *testing.T) {
	h := newHarness(t)
	cases := map[string]struct {
		mutate func(*workflows.Signup)
		field  string
	}{
		"NUL in first name":          {func(s *workflows.Signup) { s.FirstName = "Ada\x00" }, "first_name"},
		"NUL in company":             {func(s *workflows.Signup) { s.Company = "Engines\x00Ltd" }, "company"},
		"U+0001 in a name":           {func(s *workflows.Signup) { s.FirstName = "A\x01da" }, "first_name"},
		"ESC in a name":              {func(s *workflows.Signup) { s.LastName = "\x1b[31mLovelace" }, "last_name"},
		"DEL in role":                {func(s *workflows.Signup) { s.Role = "cto\x7f" }, "role"},
		"C1 control in company":      {func(s *workflows.Signup) { s.Company = "Engines\u0085Ltd" }, "company"},
		"line separator in a name":   {func(s *workflows.Signup) { s.FirstName = "Ada\u2028Bcc: x@y.example" }, "first_name"},
		"company_size 3,000,000,000": {func(s *workflows.Signup) { s.CompanySize = 3_000_000_000 }, "company_size"},
		"60 KB first name":           {func(s *workflows.Signup) { s.FirstName = strings.Repeat("A", 60<<10) }, "first_name"},
		"101-character last name":    {func(s *workflows.Signup) { s.LastName = strings.Repeat("é", 101) }, "last_name"},
		"201-character company":      {func(s *workflows.Signup) { s.Company = strings.Repeat("c", 201) }, "company"},
		"5,000-character local part": {func(s *workflows.Signup) { s.Email = strings.Repeat("l", 5000) + "@engines.example" }, "email"},
		"65-character local part":    {func(s *workflows.Signup) { s.Email = strings.Repeat("l", 65) + "@engines.example" }, "email"},
		"internationalised address":  {func(s *workflows.Signup) { s.Email = "jürgen@engines.example" }, "email"},
		"IP literal":                 {func(s *workflows.Signup) { s.Email = "ada@[192.0.2.1]" }, "email"},
		"time zone Local":            {func(s *workflows.Signup) { s.TimeZone = "Local" }, "time_zone"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := validSignup("c1")
			c.mutate(&s)
			rec := h.postJSON("/v1/signups", s)
			require.Equal(t, http.StatusBadRequest, rec.Code, "%.300s", rec.Body.String())
			e := decode[ErrorResponse](t, rec)
			assert.Equal(t, c.field, e.Field, e.Error)
			assert.True(t, strings.HasPrefix(e.Error, c.field+": "), e.Error)
			assert.Empty(t, e.Errors, "one problem, reported once")
			assert.Less(t, len(rec.Body.String()), 400, "the bad value is not echoed: %.300s", rec.Body.String())
		})
	}
	assert.Empty(t, h.temporal.sent())
}

func TestSignupInvalidUTF8NamesTheField(t *testing.T) {
	h := newHarness(t)
	for field, body := range map[string]string{
		"first_name": "{\"customer_id\":\"c1\",\"email\":\"a@b.example\",\"first_name\":\"Ada\xff\"}",
		"company":    "{\"customer_id\":\"c1\",\"email\":\"a@b.example\",\"company\":{\"x\":1},\"company\":\"E\xc3\"}",
	} {
		rec := h.postJSON("/v1/signups", body)
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		e := decode[ErrorResponse](t, rec)
		assert.Equal(t, field, e.Field, e.Error)
		assert.Equal(t, field+": is not valid UTF-8", e.Error)
	}
	assert.Empty(t, h.temporal.sent())
}

func TestBadOwnerEmailIsReportedOnce(t *testing.T) {
	h := newHarness(t)
	for _, owner := range []string{"Sales <sales@acme.example>", "sales", "sales@acme"} {
		s := validSignup("c1")
		s.OwnerEmail = owner
		rec := h.postJSON("/v1/signups", s)
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		e := decode[ErrorResponse](t, rec)
		assert.Equal(t, "owner_email", e.Field, e.Error)
		assert.Empty(t, e.Errors, "reported once: %s", rec.Body.String())
		assert.Equal(t, 1, strings.Count(rec.Body.String(), "owner_email:"), rec.Body.String())
	}
	// With another bad field, each is listed once.
	s := validSignup("c1")
	s.Email, s.OwnerEmail = "nope", "nope"
	e := decode[ErrorResponse](t, h.postJSON("/v1/signups", s))
	require.Len(t, e.Errors, 2, "%+v", e)
	assert.Equal(t, []string{"email", "owner_email"}, []string{e.Errors[0].Field, e.Errors[1].Field})
	assert.Empty(t, h.temporal.sent())
}

func TestEventRefusesWhatCannotBeStored(t *testing.T) {
	h := newHarness(t)
	for name, c := range map[string]struct{ body, field string }{
		"NUL in id":                {`{"customer_id":"c1","id":"e\u0000","type":"login"}`, "id"},
		"ESC in id":                {`{"customer_id":"c1","id":"e\u001b1","type":"login"}`, "id"},
		"201-character id":         {`{"customer_id":"c1","id":"` + strings.Repeat("i", 201) + `","type":"login"}`, "id"},
		"space around the id":      {`{"customer_id":"c1","id":" e1","type":"login"}`, "id"},
		"NUL in type":              {`{"customer_id":"c1","id":"e1","type":"log\u0000in"}`, "type"},
		"two spaces in type":       {`{"customer_id":"c1","id":"e1","type":"Order  Completed"}`, "type"},
		"65-character type":        {`{"customer_id":"c1","id":"e1","type":"` + strings.Repeat("t", 65) + `"}`, "type"},
		"NUL in a property":        {`{"customer_id":"c1","id":"e1","type":"login","properties":{"page":"/x\u0000"}}`, "properties"},
		"NUL in a property key":    {`{"customer_id":"c1","id":"e1","type":"login","properties":{"k\u0000":1}}`, "properties"},
		"invalid UTF-8 property":   {"{\"customer_id\":\"c1\",\"id\":\"e1\",\"type\":\"login\",\"properties\":{\"page\":\"\xff\"}}", "properties"},
		"properties over 8 KiB":    {`{"customer_id":"c1","id":"e1","type":"login","properties":{"x":"` + strings.Repeat("x", 8<<10) + `"}}`, "properties"},
		"properties 6 levels deep": {`{"customer_id":"c1","id":"e1","type":"login","properties":{"a":{"b":{"c":{"d":{"e":{}}}}}}}`, "properties"},
		"101-character key":        {`{"customer_id":"c1","id":"e1","type":"login","properties":{"` + strings.Repeat("k", 101) + `":1}}`, "properties"},
		"NUL in customer_id":       {`{"customer_id":"c\u0000","id":"e1","type":"login"}`, "customer_id"},
	} {
		rec := h.postJSON("/v1/events", c.body)
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s: %.300s", name, rec.Body.String())
		e := decode[ErrorResponse](t, rec)
		assert.Equal(t, c.field, e.Field, "%s: %s", name, e.Error)
		assert.True(t, strings.HasPrefix(e.Error, c.field+": "), "%s: %s", name, e.Error)
	}
	assert.Empty(t, h.temporal.sent())

	// Every bad field of one event is listed.
	e := decode[ErrorResponse](t, h.postJSON("/v1/events", `{"customer_id":"c 1","id":"","type":" ab"}`))
	require.Len(t, e.Errors, 3, "%+v", e)
	assert.Equal(t, []string{"customer_id", "id", "type"}, []string{e.Errors[0].Field, e.Errors[1].Field, e.Errors[2].Field})
}

// In a batch, a bad event (invalid UTF-8 included) is rejected with its
// field; the others go through.
func TestBatchRejectsOnlyTheBadEvent(t *testing.T) {
	h := newHarness(t)
	body := "{\"events\": [" +
		"{\"customer_id\":\"a\",\"id\":\"a1\",\"type\":\"login\"}," +
		"{\"customer_id\":\"a\",\"id\":\"a2\",\"type\":\"login\",\"properties\":{\"p\":\"\xfe\"}}," +
		"{\"customer_id\":\"a\",\"id\":\"a3\",\"type\":\"log\\u0000in\"}," +
		"{\"customer_id\":\"a\",\"id\":\"a4\",\"type\":\"login\"}]}"
	rec := h.postJSON("/v1/events", body)
	require.Equal(t, http.StatusMultiStatus, rec.Code, rec.Body.String())
	res := decode[EventsResponse](t, rec)
	assert.Equal(t, 2, res.Accepted)
	require.Len(t, res.Rejected, 2)
	assert.Equal(t, ItemError{Index: 1, Field: "properties", Error: "properties: is not valid UTF-8"}, res.Rejected[0])
	assert.Equal(t, 2, res.Rejected[1].Index)
	assert.Equal(t, "type", res.Rejected[1].Field)
}
