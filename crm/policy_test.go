package crm_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

// policyClaim is a marketing claim for customer with the policy.
func policyClaim(customer, key string, p *crm.ContactPolicy) crm.SendClaim {
	return crm.SendClaim{Key: key, CustomerID: customer, Email: customer + "@example.com", Template: "nurture",
		Category: crm.CategoryMarketing, MessageID: "<" + key + "@lifecycle.test>", Policy: p}
}

// sentAt records a marketing (or transactional) email to customer as sent at.
func sentAt(t *testing.T, s *crm.Store, customer, key, category string, at time.Time) {
	t.Helper()
	c := policyClaim(customer, key, nil)
	c.Category = category
	requireClaim(t, s, c, crm.ClaimNew)
	require.NoError(t, s.MarkSent(t.Context(), key, at))
}

func claimOutcome(t *testing.T, s *crm.Store, c crm.SendClaim) crm.ClaimOutcome {
	t.Helper()
	o, err := s.ClaimSendOutcome(t.Context(), c)
	require.NoError(t, err)
	return o
}

func requireSameTime(t *testing.T, want, got time.Time, msg ...any) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s %v", want, got, fmt.Sprint(msg...))
}

func requireNoRow(t *testing.T, s *crm.Store, key string) {
	t.Helper()
	_, err := s.GetSend(t.Context(), key)
	require.ErrorIs(t, err, crm.ErrNotFound, "the ledger holds %s", key)
}

func TestContactPolicyDecide(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return now.Add(time.Duration(n) * time.Hour) }
	cases := []struct {
		name   string
		p      crm.ContactPolicy
		recent []time.Time
		until  time.Time
		rule   crm.Skip
	}{
		{"no rules", crm.ContactPolicy{}, []time.Time{h(0)}, time.Time{}, crm.SkipNone},
		{"nothing recent", crm.ContactPolicy{MinGap: 4 * time.Hour, CapMax: 1, CapWindow: 24 * time.Hour}, nil, time.Time{}, crm.SkipNone},
		{"gap: the latest send counts", crm.ContactPolicy{MinGap: 4 * time.Hour}, []time.Time{h(-3), h(-1), h(-10)}, h(3), crm.SkipMinGap},
		{"gap: exactly the gap ago is allowed", crm.ContactPolicy{MinGap: 4 * time.Hour}, []time.Time{h(-4)}, time.Time{}, crm.SkipNone},
		{"gap: a send stamped after now counts", crm.ContactPolicy{MinGap: 4 * time.Hour}, []time.Time{now.Add(time.Second)}, now.Add(4*time.Hour + time.Second), crm.SkipMinGap},
		{"cap: under it", crm.ContactPolicy{CapMax: 3, CapWindow: 24 * time.Hour}, []time.Time{h(-1), h(-2), h(-30)}, time.Time{}, crm.SkipNone},
		{"cap: reached, the oldest leaves", crm.ContactPolicy{CapMax: 2, CapWindow: 24 * time.Hour}, []time.Time{h(-2), h(-20), h(-30)}, h(4), crm.SkipFrequencyCap},
		{"cap: over it, enough must leave", crm.ContactPolicy{CapMax: 2, CapWindow: 24 * time.Hour}, []time.Time{h(-20), h(-2), h(-10)}, h(14), crm.SkipFrequencyCap},
		{"both: the later wins (gap)", crm.ContactPolicy{MinGap: 6 * time.Hour, CapMax: 2, CapWindow: 24 * time.Hour}, []time.Time{h(-1), h(-22)}, h(5), crm.SkipMinGap},
		{"both: the later wins (cap)", crm.ContactPolicy{MinGap: 2 * time.Hour, CapMax: 2, CapWindow: 24 * time.Hour}, []time.Time{h(-1), h(-20)}, h(4), crm.SkipFrequencyCap},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			until, rule := tc.p.Decide(now, tc.recent)
			requireSameTime(t, tc.until, until)
			require.Equal(t, tc.rule, rule)
		})
	}
}

// A marketing email claimed within the minimum gap after another one (any
// source, any key) is deferred until that send + the gap, and leaves no
// ledger row, so the same key is new once the gap has passed.
func TestClaimSendDefersWithinTheMinimumGap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	gap := &crm.ContactPolicy{MinGap: 3 * time.Hour}
	last := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	sentAt(t, s, "cus_1", "cus_1/broadcast/xmas", crm.CategoryMarketing, time.Now().Add(-5*time.Hour))
	sentAt(t, s, "cus_1", "cus_1/broadcast/news", crm.CategoryMarketing, last)

	next := policyClaim("cus_1", "cus_1/j1/nurture#1/n2", gap)
	o := claimOutcome(t, s, next)
	require.Equal(t, crm.ClaimDeferred, o.Result)
	require.False(t, o.Result.MaySend())
	requireSameTime(t, last.Add(3*time.Hour), o.DeferredUntil, "the latest send + the gap")
	require.Equal(t, crm.SkipMinGap, o.DeferredBy)
	requireNoRow(t, s, next.Key)
	requireClaim(t, s, next, crm.ClaimDeferred) // ClaimSend says the same, without the time

	// Without a policy the ledger does not check; another customer's
	// sends do not matter.
	requireClaim(t, s, policyClaim("cus_1", "cus_1/no-policy", nil), crm.ClaimNew)
	requireClaim(t, s, policyClaim("cus_2", "cus_2/j1/nurture#1/n2", gap), crm.ClaimNew)

	// A key the ledger holds keeps its answer, whatever the policy says.
	requireClaim(t, s, policyClaim("cus_1", "cus_1/broadcast/news", gap), crm.ClaimAlreadySent)

	// After the gap (the sends moved back in time), the same key is new.
	_, err := s.Pool().Exec(ctx, `UPDATE email_log SET sent_at = sent_at - interval '3 hours' WHERE customer_id = 'cus_1'`)
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `DELETE FROM email_log WHERE send_key = 'cus_1/no-policy'`) // in flight: counts
	require.NoError(t, err)
	o = claimOutcome(t, s, next)
	require.Equal(t, crm.ClaimNew, o.Result)
	require.True(t, o.LeaseUntil.After(time.Now()), "the claim's lease: %s", o.LeaseUntil)
	require.True(t, o.DeferredUntil.IsZero())
}

// CapMax marketing sends within the window defer the claim until enough of
// them have left it.
func TestClaimSendDefersAtTheFrequencyCap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	now := time.Now().Truncate(time.Millisecond)
	weekly := &crm.ContactPolicy{CapMax: 2, CapWindow: 7 * 24 * time.Hour}
	sentAt(t, s, "cus_1", "cus_1/m/1", crm.CategoryMarketing, now.Add(-8*24*time.Hour)) // outside the window
	sentAt(t, s, "cus_1", "cus_1/m/2", crm.CategoryMarketing, now.Add(-3*24*time.Hour))
	requireClaim(t, s, policyClaim("cus_1", "cus_1/m/3", weekly), crm.ClaimNew) // one in the window
	require.NoError(t, s.MarkSent(t.Context(), "cus_1/m/3", now.Add(-time.Hour)))

	o := claimOutcome(t, s, policyClaim("cus_1", "cus_1/m/4", weekly))
	require.Equal(t, crm.ClaimDeferred, o.Result)
	require.Equal(t, crm.SkipFrequencyCap, o.DeferredBy)
	requireSameTime(t, now.Add(-3*24*time.Hour).Add(7*24*time.Hour), o.DeferredUntil, "the oldest in the window + the window")
	requireNoRow(t, s, "cus_1/m/4")

	// With a gap as well, the later of the two deferrals.
	both := &crm.ContactPolicy{MinGap: 5 * 24 * time.Hour, CapMax: 2, CapWindow: 7 * 24 * time.Hour}
	o = claimOutcome(t, s, policyClaim("cus_1", "cus_1/m/4", both))
	require.Equal(t, crm.SkipMinGap, o.DeferredBy)
	requireSameTime(t, now.Add(-time.Hour).Add(5*24*time.Hour), o.DeferredUntil)

	// Transactional mail neither counts nor is deferred.
	for i := range 3 {
		sentAt(t, s, "cus_2", fmt.Sprintf("cus_2/receipt/%d", i), crm.CategoryTransactional, now.Add(-time.Minute))
	}
	requireClaim(t, s, policyClaim("cus_2", "cus_2/m/1", both), crm.ClaimNew)
	receipt := policyClaim("cus_1", "cus_1/receipt/9", both)
	receipt.Category = crm.CategoryTransactional
	requireClaim(t, s, receipt, crm.ClaimNew)
}

// A marketing claim in flight (its lease running) counts as a send at its
// claim time: two claims in a row for one customer do not both send. An
// abandoned claim (lease run out) does not count.
func TestClaimSendCountsClaimsInFlightForTheGap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	gap := &crm.ContactPolicy{MinGap: time.Hour}
	first := policyClaim("cus_1", "cus_1/a", gap)
	first.Lease = time.Minute
	requireClaim(t, s, first, crm.ClaimNew)
	row, err := s.GetSend(ctx, first.Key)
	require.NoError(t, err)

	o := claimOutcome(t, s, policyClaim("cus_1", "cus_1/b", gap))
	require.Equal(t, crm.ClaimDeferred, o.Result)
	requireSameTime(t, row.ClaimedAt.Add(time.Hour), o.DeferredUntil, "the claim time + the gap")

	_, err = s.Pool().Exec(ctx, `UPDATE email_log SET lease_until = now() - interval '1 second' WHERE send_key = $1`, first.Key)
	require.NoError(t, err)
	requireClaim(t, s, policyClaim("cus_1", "cus_1/b", gap), crm.ClaimNew)
}

// Two claims for one customer at once never both pass the gap: the claims
// are serialised per customer, and the winner's claim is in flight for
// the others. The same holds between single claims and batches.
func TestClaimSendConcurrentClaimsForOneCustomerOnePassesTheGap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	gap := &crm.ContactPolicy{MinGap: time.Hour}

	const n = 16
	results := make([]crm.ClaimResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c := policyClaim("cus_1", fmt.Sprintf("cus_1/parallel/%d", i), gap)
			if i%2 == 0 {
				results[i], errs[i] = s.ClaimSend(ctx, c)
				return
			}
			// The other half as batches, with an unrelated customer each.
			var out []crm.ClaimOutcome
			out, errs[i] = s.ClaimSendBatch(ctx, []crm.SendClaim{
				policyClaim(fmt.Sprintf("other_%d", i), fmt.Sprintf("other_%d/parallel", i), gap), c})
			if errs[i] == nil {
				require.Equal(t, crm.ClaimNew, out[0].Result)
				results[i] = out[1].Result
			}
		})
	}
	close(start)
	wg.Wait()
	counts := map[crm.ClaimResult]int{}
	for i := range n {
		require.NoError(t, errs[i])
		counts[results[i]]++
	}
	require.Equal(t, map[crm.ClaimResult]int{crm.ClaimNew: 1, crm.ClaimDeferred: n - 1}, counts)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM email_log WHERE customer_id = 'cus_1'`))
}

// ClaimSendBatch checks the policy of each new key as ClaimSendOutcome
// does: deferred claims are answered with their time and not inserted;
// suppressed addresses and keys the ledger holds keep their answers; two
// claims of one customer in a batch see each other.
func TestClaimSendBatchDefersByThePolicy(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	gap := &crm.ContactPolicy{MinGap: 2 * time.Hour}
	recent := time.Now().Add(-30 * time.Minute).Truncate(time.Millisecond)
	sentAt(t, s, "b1", "b1/journey/n1", crm.CategoryMarketing, recent)
	sentAt(t, s, "b3", "b3/journey/n1", crm.CategoryMarketing, recent)
	require.NoError(t, s.Suppress(ctx, "b3@example.com", "b3", crm.ReasonUnsubscribed))
	sentAt(t, s, "b4", "b4/broadcast/x", crm.CategoryMarketing, recent)

	out, err := s.ClaimSendBatch(ctx, []crm.SendClaim{
		policyClaim("b1", "b1/broadcast/x", gap), // a journey email 30 minutes ago
		policyClaim("b2", "b2/broadcast/x", gap), // nothing recent
		policyClaim("b3", "b3/broadcast/x", gap), // suppressed: recorded as such
		policyClaim("b4", "b4/broadcast/x", gap), // its own send, already in the ledger
		policyClaim("b5", "b5/broadcast/x", gap), // two of b5's in one batch
		policyClaim("b5", "b5/broadcast/y", gap),
	})
	require.NoError(t, err)
	got := map[string]crm.ClaimResult{}
	for _, o := range out {
		got[o.Key] = o.Result
	}
	require.Equal(t, map[string]crm.ClaimResult{
		"b1/broadcast/x": crm.ClaimDeferred, "b2/broadcast/x": crm.ClaimNew, "b3/broadcast/x": crm.ClaimSuppressed,
		"b4/broadcast/x": crm.ClaimAlreadySent, "b5/broadcast/x": crm.ClaimNew, "b5/broadcast/y": crm.ClaimDeferred,
	}, got)
	requireSameTime(t, recent.Add(2*time.Hour), out[0].DeferredUntil)
	require.Equal(t, crm.SkipMinGap, out[0].DeferredBy)
	require.True(t, out[5].DeferredUntil.After(time.Now().Add(time.Hour)), "after b5/broadcast/x: %s", out[5].DeferredUntil)
	requireNoRow(t, s, "b1/broadcast/x")
	requireNoRow(t, s, "b5/broadcast/y")
	require.True(t, out[1].LeaseUntil.After(time.Now()))

	// Transactional claims are not checked.
	receipt := policyClaim("b1", "b1/receipt", gap)
	receipt.Category = crm.CategoryTransactional
	out, err = s.ClaimSendBatch(ctx, []crm.SendClaim{receipt})
	require.NoError(t, err)
	require.Equal(t, crm.ClaimNew, out[0].Result)
}

func TestClaimSendRejectsABadPolicy(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cases := map[string]crm.ContactPolicy{
		"policy.min_gap":    {MinGap: -time.Second},
		"policy.cap_max":    {CapMax: -1, CapWindow: time.Hour},
		"policy.cap_window": {CapMax: 2},
	}
	for field, p := range cases {
		_, err := s.ClaimSend(t.Context(), policyClaim("cus_1", "k", &p))
		requireInvalid(t, err, field)
		_, err = s.ClaimSendBatch(t.Context(), []crm.SendClaim{policyClaim("cus_1", "k", &p)})
		requireInvalid(t, err, field)
	}
}

// The audience query flags a contact who got a marketing email within the
// gap (min_gap), after the ledger's own verdicts and the cap.
func TestSegmentPageMinimumGap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, id := range []string{"g1", "g2", "g3", "g4"} {
		mustUpsert(t, s, contact(id))
	}
	now := time.Now()
	sentAt(t, s, "g1", "g1/journey/n1", crm.CategoryMarketing, now.Add(-time.Hour))    // within
	sentAt(t, s, "g2", "g2/journey/n1", crm.CategoryMarketing, now.Add(-5*time.Hour))  // before the gap
	sentAt(t, s, "g3", "g3/receipt", crm.CategoryTransactional, now.Add(-time.Minute)) // transactional
	sentAt(t, s, "g4", "g4"+suffix, crm.CategoryMarketing, now.Add(-time.Minute))      // this message
	requireClaim(t, s, policyClaim("g2", "g2/journey/n2", nil), crm.ClaimNew)          // in flight: the claim decides

	rs := page(t, s, crm.SegmentQuery{SendKeySuffix: suffix, MinGap: 4 * time.Hour})
	require.Equal(t, map[string]crm.Skip{"g1": crm.SkipMinGap, "g2": crm.SkipNone, "g3": crm.SkipNone,
		"g4": crm.SkipAlreadySent}, skips(rs))
	rs = page(t, s, crm.SegmentQuery{SendKeySuffix: suffix, MinGap: 6 * time.Hour,
		Cap: &crm.MarketingCap{Max: 1, Window: 2 * time.Hour}})
	require.Equal(t, map[string]crm.Skip{"g1": crm.SkipFrequencyCap, "g2": crm.SkipMinGap, "g3": crm.SkipNone,
		"g4": crm.SkipAlreadySent}, skips(rs))

	_, err := s.SegmentPage(t.Context(), crm.SegmentQuery{Limit: 10, MinGap: -time.Second})
	requireInvalid(t, err, "min_gap")
}
