package crm_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func TestHashEmail(t *testing.T) {
	t.Parallel()
	h := crm.HashEmail("Ada@Example.COM ")
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), h)
	require.Equal(t, h, crm.HashEmail("ada@example.com"))
	require.NotEqual(t, h, crm.HashEmail("bob@example.com"))
}

func TestSuppressionByHashCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))

	ok, reason, err := s.IsSuppressed(ctx, "cus_1@example.com")
	require.NoError(t, err)
	require.False(t, ok)
	require.Empty(t, reason)

	require.NoError(t, s.Suppress(ctx, "CUS_1@Example.com", "cus_1", customer.ReasonUnsubscribed))
	require.NoError(t, s.Suppress(ctx, "cus_1@example.com", "cus_1", customer.ReasonUnsubscribed))
	ok, reason, err = s.IsSuppressed(ctx, "Cus_1@EXAMPLE.com")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, customer.ReasonUnsubscribed, reason)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM suppressions`))
	require.Equal(t, 0, count(t, s, `SELECT count(*) FROM suppressions WHERE email_hash ILIKE '%example%'`), "only the hash is kept")

	// Unsubscribing withdraws marketing consent at once.
	c, err := s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.False(t, c.Consent)

	// Only strengthened: bounced beats unsubscribed, a later unsubscribe
	// does not weaken it.
	require.NoError(t, s.Suppress(ctx, "cus_1@example.com", "", customer.ReasonBounced))
	require.NoError(t, s.Suppress(ctx, "cus_1@example.com", "", customer.ReasonUnsubscribed))
	_, reason, err = s.IsSuppressed(ctx, "cus_1@example.com")
	require.NoError(t, err)
	require.Equal(t, customer.ReasonBounced, reason)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM suppressions WHERE customer_id = 'cus_1'`))

	requireInvalid(t, s.Suppress(ctx, "x@example.com", "", "annoyed"), "reason")
	requireInvalid(t, s.Suppress(ctx, " ", "", customer.ReasonBounced), "email")
	_, _, err = s.IsSuppressed(ctx, "")
	requireInvalid(t, err, "email")
}
