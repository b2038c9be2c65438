package crm_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

func TestUseSignatureOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	exp := time.Now().Add(5 * time.Minute)

	fresh, err := s.UseSignature(ctx, "aa01", exp)
	require.NoError(t, err)
	require.True(t, fresh, "first use")
	fresh, err = s.UseSignature(ctx, "aa01", exp.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, fresh, "second use of the same signature")
	fresh, err = s.UseSignature(ctx, "aa02", exp)
	require.NoError(t, err)
	require.True(t, fresh, "another signature")

	// Another process's pool on the same database (an API replica, or the
	// API after a restart) sees the signature as used.
	other := openStore(t, dbURL(t, s))
	fresh, err = other.UseSignature(ctx, "aa01", exp)
	require.NoError(t, err)
	require.False(t, fresh, "used signature through another pool")
	require.Equal(t, 2, count(t, s, `SELECT count(*) FROM api_replays`))
}

func TestUseSignatureConcurrently(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	exp := time.Now().Add(5 * time.Minute)
	const n = 8
	results := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.UseSignature(t.Context(), "same", exp) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		require.NoError(t, errs[i])
		if results[i] {
			fresh++
		}
	}
	require.Equal(t, 1, fresh, "exactly one of %d concurrent uses is fresh", n)
}

func TestUseSignatureValidates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	exp := time.Now().Add(time.Minute)
	_, err := s.UseSignature(t.Context(), " ", exp)
	requireInvalid(t, err, "signature")
	_, err = s.UseSignature(t.Context(), strings.Repeat("a", 257), exp)
	requireInvalid(t, err, "signature")
	_, err = s.UseSignature(t.Context(), "aa", time.Time{})
	requireInvalid(t, err, "expires_at")
	_, err = s.SweepSignatures(t.Context(), exp, 0)
	requireInvalid(t, err, "limit")
	require.Zero(t, count(t, s, `SELECT count(*) FROM api_replays`))
}

func TestSweepSignaturesDeletesExpiredInBatches(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	for i, sig := range []string{"old1", "old2", "old3"} {
		_, err := s.UseSignature(ctx, sig, now.Add(-time.Duration(i+1)*time.Minute))
		require.NoError(t, err)
	}
	_, err := s.UseSignature(ctx, "at-cutoff", now)
	require.NoError(t, err)
	_, err = s.UseSignature(ctx, "live", now.Add(time.Minute))
	require.NoError(t, err)

	n, err := s.SweepSignatures(ctx, now, 2)
	require.NoError(t, err)
	require.Equal(t, 2, n, "a sweep deletes at most limit rows")
	n, err = s.SweepSignatures(ctx, now, 2)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = s.SweepSignatures(ctx, now, 2)
	require.NoError(t, err)
	require.Zero(t, n)

	var left []string
	rows, err := s.Pool().Query(ctx, `SELECT signature FROM api_replays ORDER BY signature`)
	require.NoError(t, err)
	for rows.Next() {
		var sig string
		require.NoError(t, rows.Scan(&sig))
		left = append(left, sig)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"at-cutoff", "live"}, left, "rows expiring at or after the cutoff stay")

	// A swept signature is fresh again (the API's timestamp check is what
	// refuses it by then).
	fresh, err := s.UseSignature(ctx, "old1", now.Add(5*time.Minute))
	require.NoError(t, err)
	require.True(t, fresh)
}

func TestUseSignatureDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	s.Close()
	_, err := s.UseSignature(t.Context(), "aa", time.Now().Add(time.Minute))
	require.ErrorContains(t, err, "use signature")
	_, err = s.SweepSignatures(t.Context(), time.Now(), 10)
	require.ErrorContains(t, err, "sweep signatures")
}

// dbURL is the URL of the database s is connected to.
func dbURL(t *testing.T, s *crm.Store) string {
	t.Helper()
	return s.Pool().Config().ConnString()
}
