package crm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

// The CRM refuses what the customer rules refuse (package customer), with
// a *ValidationError naming the field, before anything reaches the
// database: the same inputs the HTTP API refuses.
func TestContactFollowsTheCustomerRules(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cases := map[string]func(*crm.Contact){
		"customer_id":  func(c *crm.Contact) { c.CustomerID = "a b/c" },
		"first_name":   func(c *crm.Contact) { c.FirstName = "Ada\x00" },
		"last_name":    func(c *crm.Contact) { c.LastName = "\x1b[31mLovelace" },
		"company":      func(c *crm.Contact) { c.Company = strings.Repeat("c", 201) },
		"role":         func(c *crm.Contact) { c.Role = "c\x01to" },
		"company_size": func(c *crm.Contact) { c.CompanySize = 3_000_000_000 },
		"email":        func(c *crm.Contact) { c.Email = strings.Repeat("l", 65) + "@engines.example" },
		"owner_email":  func(c *crm.Contact) { c.OwnerEmail = "jürgen@acme.example" },
		"time_zone":    func(c *crm.Contact) { c.TimeZone = "localtime" },
	}
	for field, mutate := range cases {
		c := contact("cus_rules")
		mutate(&c)
		requireInvalid(t, s.UpsertContact(t.Context(), c), field)
	}
	require.Equal(t, 0, count(t, s, `SELECT count(*) FROM contacts`))

	// Addresses are personal data: the CRM's errors (which end up in logs)
	// do not repeat them.
	c := contact("cus_rules")
	c.Email = "ada.lovelace"
	err := s.UpsertContact(t.Context(), c)
	requireInvalid(t, err, "email")
	assert.NotContains(t, err.Error(), "ada.lovelace")

	// The limits themselves are accepted, and read back as written.
	c = contact("cus_rules")
	c.FirstName, c.Company, c.CompanySize = strings.Repeat("Ä", 100), strings.Repeat("C", 200), 10_000_000
	c.Email = strings.Repeat("l", 64) + "@engines.example"
	mustUpsert(t, s, c)
	got, err := s.GetContact(t.Context(), c.CustomerID)
	require.NoError(t, err)
	assert.Equal(t, c.FirstName, got.FirstName)
	assert.Equal(t, c.Email, got.Email)
}

func TestEventFollowsTheCustomerRules(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	at := time.Now()
	good := crm.Event{ID: "ok", CustomerID: "cus_1", Type: "login", OccurredAt: at}
	cases := map[string]crm.Event{
		"events[1].event_id":    {ID: "e\x00", CustomerID: "cus_1", Type: "login", OccurredAt: at},
		"events[1].customer_id": {ID: "e", CustomerID: "cus 1", Type: "login", OccurredAt: at},
		"events[1].type":        {ID: "e", CustomerID: "cus_1", Type: "log\x00in", OccurredAt: at},
		"events[1].properties":  {ID: "e", CustomerID: "cus_1", Type: "login", OccurredAt: at, Properties: map[string]any{"p": "x\x00"}},
	}
	for field, bad := range cases {
		_, err := s.RecordEvents(t.Context(), []crm.Event{good, bad})
		requireInvalid(t, err, field)
	}
	// Six levels: the properties object and five nested in it.
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{}}}}}}
	_, err := s.RecordEvents(t.Context(), []crm.Event{good, {ID: "e", CustomerID: "cus_1", Type: "login", OccurredAt: at, Properties: deep}})
	requireInvalid(t, err, "events[1].properties")
	require.Equal(t, 0, count(t, s, `SELECT count(*) FROM events`), "nothing of a rejected batch is written")
}
