package crm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/internal/testenv"
)

// newStore opens a migrated store on a fresh database.
func newStore(t *testing.T) *crm.Store {
	t.Helper()
	s := openStore(t, testenv.NewDatabase(t))
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

// openStore opens a store that is closed when the test ends (before the
// test database is dropped).
func openStore(t *testing.T, url string) *crm.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := crm.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// count runs a SELECT count(*) query.
func count(t *testing.T, s *crm.Store, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool().QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

// requireInvalid checks that err is a validation error naming field.
func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, crm.ErrInvalid)
	var verr *crm.ValidationError
	require.True(t, errors.As(err, &verr), "error %v is not a *ValidationError", err)
	require.Equal(t, field, verr.Field, "error: %v", err)
	require.Contains(t, err.Error(), field)
}

func contact(id string) crm.Contact {
	return crm.Contact{
		CustomerID:  id,
		Email:       id + "@example.com",
		FirstName:   "Ada",
		LastName:    "Lovelace",
		Company:     "Analytical Engines Ltd",
		Role:        "CTO",
		CompanySize: 42,
		TimeZone:    "Europe/Berlin",
		LeadSource:  customer.LeadReferral,
		OwnerEmail:  "owner@acme.test",
		Consent:     true,
		Stage:       crm.StageTrial,
		CampaignID:  "trial",
	}
}

func mustUpsert(t *testing.T, s *crm.Store, c crm.Contact) {
	t.Helper()
	require.NoError(t, s.UpsertContact(t.Context(), c))
}
