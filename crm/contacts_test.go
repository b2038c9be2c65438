package crm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func TestUpsertContactTwiceUpdatesOneRow(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	c := contact("cus_1")
	c.Score = 15
	mustUpsert(t, s, c)
	mustUpsert(t, s, c) // a retry
	got, err := s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, "cus_1@example.com", got.Email)
	require.Equal(t, crm.StageTrial, got.Stage)
	require.Equal(t, 15, got.Score)
	require.False(t, got.Erased())
	created := got.CreatedAt

	c.Email = "ada@engines.example"
	c.Company = "Engines Inc"
	c.CompanySize = 7
	c.TimeZone = "America/New_York"
	c.LeadSource = customer.LeadCold
	c.Consent = false
	c.DeliveryOwnerEmail = "delivery@acme.test"
	// The journey owns stage and score: an update does not overwrite them.
	c.Stage = crm.StageChurned
	c.Score = 99
	mustUpsert(t, s, c)

	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM contacts`))
	got, err = s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, "ada@engines.example", got.Email)
	require.Equal(t, "Engines Inc", got.Company)
	require.Equal(t, 7, got.CompanySize)
	require.Equal(t, "America/New_York", got.TimeZone)
	require.Equal(t, customer.LeadCold, got.LeadSource)
	require.False(t, got.Consent)
	require.Equal(t, "delivery@acme.test", got.DeliveryOwnerEmail)
	require.Equal(t, crm.StageTrial, got.Stage)
	require.Equal(t, 15, got.Score)
	require.True(t, got.CreatedAt.Equal(created))
	require.False(t, got.UpdatedAt.Before(created))
}

func TestGetContactNotFound(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, err := s.GetContact(t.Context(), "nobody")
	require.ErrorIs(t, err, crm.ErrNotFound)
	requireInvalid(t, func() error { _, err := s.GetContact(t.Context(), " "); return err }(), "customer_id")
}

func TestUpsertContactRejectsGarbage(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cases := map[string]func(*crm.Contact){
		"customer_id":          func(c *crm.Contact) { c.CustomerID = "" },
		"email":                func(c *crm.Contact) { c.Email = "not an address" },
		"lead_source":          func(c *crm.Contact) { c.LeadSource = "billboard" },
		"time_zone":            func(c *crm.Contact) { c.TimeZone = "Mars/Olympus_Mons" },
		"company_size":         func(c *crm.Contact) { c.CompanySize = -1 },
		"stage":                func(c *crm.Contact) { c.Stage = "limbo" },
		"owner_email":          func(c *crm.Contact) { c.OwnerEmail = "Owner <owner@acme.test>" },
		"delivery_owner_email": func(c *crm.Contact) { c.DeliveryOwnerEmail = "@acme" },
	}
	for field, mutate := range cases {
		c := contact("cus_bad")
		mutate(&c)
		requireInvalid(t, s.UpsertContact(t.Context(), c), field)
	}
	require.Equal(t, 0, count(t, s, `SELECT count(*) FROM contacts`))

	// Empty lead source and time zone mean "unknown" and are accepted.
	c := contact("cus_minimal")
	c.LeadSource, c.TimeZone, c.Stage = "", "", ""
	mustUpsert(t, s, c)
}
