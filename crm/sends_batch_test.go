package crm_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

func batchClaim(id string) crm.SendClaim {
	return crm.SendClaim{Key: id + suffix, CustomerID: id, Email: id + "@example.com", Template: "t",
		Category: crm.CategoryMarketing, MessageID: "<" + id + "@x>", Lease: time.Minute}
}

func results(t *testing.T, s *crm.Store, claims ...crm.SendClaim) []crm.ClaimResult {
	t.Helper()
	out, err := s.ClaimSendBatch(t.Context(), claims)
	require.NoError(t, err)
	require.Len(t, out, len(claims))
	var rs []crm.ClaimResult
	for i, o := range out {
		require.Equal(t, claims[i].Key, o.Key)
		rs = append(rs, o.Result)
	}
	return rs
}

func TestClaimSendBatchMatchesClaimSend(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	sent, failed, inFlight, abandoned, transient, fresh, suppressed, late := batchClaim("b1"), batchClaim("b2"),
		batchClaim("b3"), batchClaim("b4"), batchClaim("b5"), batchClaim("b6"), batchClaim("b7"), batchClaim("b8")
	abandoned.Lease = time.Millisecond
	late.Lease = time.Millisecond
	require.NoError(t, s.Suppress(ctx, suppressed.Email, "", crm.ReasonComplained))
	require.Equal(t, []crm.ClaimResult{crm.ClaimNew, crm.ClaimNew, crm.ClaimNew, crm.ClaimNew, crm.ClaimNew, crm.ClaimSuppressed, crm.ClaimNew},
		results(t, s, sent, failed, inFlight, abandoned, transient, suppressed, late))
	require.NoError(t, s.MarkSentBatch(ctx, []crm.SentAt{{Key: sent.Key}}))
	require.NoError(t, s.MarkFailed(ctx, failed.Key, "550", true))
	require.NoError(t, s.MarkFailedBatch(ctx, []string{transient.Key}, "421 try later", false))
	time.Sleep(20 * time.Millisecond)
	// late's address got bounced after its (now lapsed) claim.
	require.NoError(t, s.Suppress(ctx, late.Email, "", crm.ReasonBounced))

	abandoned.Lease = time.Minute // the retry's own lease
	out, err := s.ClaimSendBatch(ctx, []crm.SendClaim{sent, failed, inFlight, abandoned, transient, fresh, suppressed, late})
	require.NoError(t, err)
	var got []crm.ClaimResult
	for _, o := range out {
		got = append(got, o.Result)
	}
	require.Equal(t, []crm.ClaimResult{crm.ClaimAlreadySent, crm.ClaimFailed, crm.ClaimInProgress, crm.ClaimRetry,
		crm.ClaimRetry, crm.ClaimNew, crm.ClaimSuppressed, crm.ClaimSuppressed}, got)
	require.WithinDuration(t, time.Now().Add(time.Minute), out[2].LeaseUntil, 10*time.Second, "in flight: when its lease ends")
	require.WithinDuration(t, time.Now().Add(time.Minute), out[3].LeaseUntil, 10*time.Second, "retry: a fresh lease")

	for key, want := range map[string]struct {
		status   string
		attempts int
	}{
		sent.Key: {crm.SendSent, 1}, failed.Key: {crm.SendFailed, 1}, inFlight.Key: {crm.SendClaimed, 1},
		abandoned.Key: {crm.SendClaimed, 2}, transient.Key: {crm.SendClaimed, 2}, fresh.Key: {crm.SendClaimed, 1},
		suppressed.Key: {crm.SendSuppressed, 0}, late.Key: {crm.SendSuppressed, 1},
	} {
		row, err := s.GetSend(ctx, key)
		require.NoError(t, err)
		require.Equal(t, want.status, row.Status, key)
		require.Equal(t, want.attempts, row.Attempts, key)
	}

	// The same mistakes as ClaimSend are refused, naming the claim.
	bad := batchClaim("b9")
	bad.Email = "not an address"
	_, err = s.ClaimSendBatch(ctx, []crm.SendClaim{fresh, bad})
	requireInvalid(t, err, "email")
	require.Contains(t, err.Error(), "claims[1]")
	_, err = s.ClaimSendBatch(ctx, []crm.SendClaim{batchClaim("b10"), batchClaim("b10")})
	requireInvalid(t, err, "send_key")
	conflict := batchClaim("b11")
	conflict.Key = sent.Key
	_, err = s.ClaimSendBatch(ctx, []crm.SendClaim{conflict})
	require.ErrorIs(t, err, crm.ErrKeyConflict)
	require.ErrorIs(t, s.MarkSentBatch(ctx, []crm.SentAt{{Key: fresh.Key}, {Key: "nope"}}), crm.ErrNotFound)
	row, err := s.GetSend(ctx, fresh.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSent, row.Status, "the known keys of the batch are marked")
}

func TestClaimSendBatchConcurrentBatchesOneWinnerPerKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var claims []crm.SendClaim
	for i := range 50 {
		claims = append(claims, batchClaim(fmt.Sprintf("r%02d", i)))
	}
	const racers = 6
	outs := make([][]crm.ClaimOutcome, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		// Overlapping batches in different orders.
		mine := slices.Clone(claims)
		rand.Shuffle(len(mine), func(a, b int) { mine[a], mine[b] = mine[b], mine[a] })
		wg.Go(func() {
			<-start
			outs[i], errs[i] = s.ClaimSendBatch(t.Context(), mine)
		})
	}
	close(start)
	wg.Wait()
	winners := map[string]int{}
	for i := range racers {
		require.NoError(t, errs[i])
		for _, o := range outs[i] {
			if o.Result.MaySend() {
				winners[o.Key]++
			} else {
				require.Equal(t, crm.ClaimInProgress, o.Result)
			}
		}
	}
	require.Len(t, winners, len(claims))
	for k, n := range winners {
		require.Equal(t, 1, n, "key %s won by %d batches", k, n)
	}
}
