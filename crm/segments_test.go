package crm_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

const suffix = "/broadcast/xmas"

func page(t *testing.T, s *crm.Store, q crm.SegmentQuery) []crm.Recipient {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	rs, err := s.SegmentPage(t.Context(), q)
	require.NoError(t, err)
	return rs
}

func ids(rs []crm.Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.CustomerID
	}
	return out
}

func skips(rs []crm.Recipient) map[string]crm.Skip {
	out := map[string]crm.Skip{}
	for _, r := range rs {
		out[r.CustomerID] = r.Skip
	}
	return out
}

func TestSegmentPageFilters(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	add := func(id, stage string, score int, source string) {
		c := contact(id)
		c.Stage, c.Score, c.LeadSource = stage, score, source
		mustUpsert(t, s, c)
	}
	add("a-1", crm.StageActive, 10, crm.LeadReferral)
	add("a-2", crm.StageActive, 50, crm.LeadCold)
	add("a-3", crm.StageNurture, 70, crm.LeadReferral)
	add("b-1", crm.StageAtRisk, 40, crm.LeadSearchAds)
	add("b-2", crm.StageTrial, 0, "")
	min40 := 40

	require.Equal(t, []string{"a-1", "a-2", "a-3", "b-1", "b-2"}, ids(page(t, s, crm.SegmentQuery{})))
	require.Equal(t, []string{"a-1", "a-2"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{Stages: []string{crm.StageActive}}})))
	require.Equal(t, []string{"a-1", "a-2", "b-1"}, ids(page(t, s, crm.SegmentQuery{
		Segment: crm.Segment{Stages: []string{crm.StageActive, crm.StageAtRisk}}})))
	require.Equal(t, []string{"a-2", "a-3", "b-1"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{MinScore: &min40}})))
	require.Equal(t, []string{"a-1", "a-3"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{LeadSources: []string{crm.LeadReferral}}})))
	require.Equal(t, []string{"b-1", "b-2"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{CustomerIDPrefix: "b-"}})))
	// Filters combine with AND.
	require.Equal(t, []string{"a-2"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{
		Stages: []string{crm.StageActive}, MinScore: &min40, CustomerIDPrefix: "a-"}})))
	require.Empty(t, page(t, s, crm.SegmentQuery{Segment: crm.Segment{
		Stages: []string{crm.StageActive}, LeadSources: []string{crm.LeadSearchAds}}}))

	// The page carries what the message needs.
	r := page(t, s, crm.SegmentQuery{Segment: crm.Segment{CustomerIDPrefix: "a-3"}})
	require.Len(t, r, 1)
	require.Equal(t, crm.Recipient{CustomerID: "a-3", Email: "a-3@example.com", FirstName: "Ada", LastName: "Lovelace",
		Company: "Analytical Engines Ltd", Stage: crm.StageNurture, Score: 70, LeadSource: crm.LeadReferral,
		TimeZone: "Europe/Berlin"}, r[0])
}

func TestSegmentPageRejectsBadQueries(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	_, err := s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Segment: crm.Segment{Stages: []string{"active", "gone"}}})
	requireInvalid(t, err, "segment.stages[1]")
	_, err = s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Segment: crm.Segment{LeadSources: []string{"friend"}}})
	requireInvalid(t, err, "segment.lead_sources[0]")
	_, err = s.SegmentPage(ctx, crm.SegmentQuery{Limit: 0})
	requireInvalid(t, err, "limit")
	_, err = s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Cap: &crm.MarketingCap{Max: 0, Window: time.Hour}})
	requireInvalid(t, err, "cap.max")
	_, err = s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Cap: &crm.MarketingCap{Max: 1}})
	requireInvalid(t, err, "cap.window")
}

func TestSegmentPageLeavesOutErasedAndWithoutConsent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		mustUpsert(t, s, contact(id))
	}
	noConsent := contact("c2")
	noConsent.Consent = false
	mustUpsert(t, s, noConsent)
	require.NoError(t, s.Erase(ctx, "c3"))
	// An unsubscribe withdraws consent: the contact is not in the audience.
	require.NoError(t, s.Suppress(ctx, "c4@example.com", "c4", crm.ReasonUnsubscribed))

	require.Equal(t, []string{"c1"}, ids(page(t, s, crm.SegmentQuery{})))
}

func TestSegmentPageFlagsSuppressedAddresses(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"s1", "s2", "s3"} {
		mustUpsert(t, s, contact(id))
	}
	mixed := contact("s4")
	mixed.Email = "Mixed.Case@Example.COM"
	mustUpsert(t, s, mixed)
	// Bounced and complained-by-another-path keep consent on the contact;
	// the address hash is what matches (any case).
	require.NoError(t, s.Suppress(ctx, "S1@EXAMPLE.COM", "", crm.ReasonBounced))
	require.NoError(t, s.Suppress(ctx, "mixed.case@example.com", "", crm.ReasonInvalid))

	rs := page(t, s, crm.SegmentQuery{})
	require.Equal(t, map[string]crm.Skip{"s1": crm.SkipSuppressed, "s2": crm.SkipNone, "s3": crm.SkipNone, "s4": crm.SkipSuppressed}, skips(rs))
	require.Equal(t, crm.ReasonBounced, rs[0].SuppressionReason)
	require.Equal(t, crm.ReasonInvalid, rs[3].SuppressionReason)
}

func TestSegmentPageFrequencyCap(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"f1", "f2", "f3", "f4", "f5"} {
		mustUpsert(t, s, contact(id))
	}
	n := 0
	send := func(customer, category string, at time.Time, sent bool) {
		n++
		c := crm.SendClaim{Key: fmt.Sprintf("%s/m/%d", customer, n), CustomerID: customer, Email: customer + "@example.com",
			Template: "t", Category: category, MessageID: fmt.Sprintf("<%d@x>", n)}
		requireClaim(t, s, c, crm.ClaimNew)
		if sent {
			require.NoError(t, s.MarkSent(ctx, c.Key, at))
		}
	}
	now := time.Now()
	// f1: three marketing emails this week: capped.
	send("f1", crm.CategoryMarketing, now.Add(-time.Hour), true)
	send("f1", crm.CategoryMarketing, now.Add(-48*time.Hour), true)
	send("f1", crm.CategoryMarketing, now.Add(-6*24*time.Hour), true)
	// f2: two this week, one older than the window: not capped.
	send("f2", crm.CategoryMarketing, now.Add(-time.Hour), true)
	send("f2", crm.CategoryMarketing, now.Add(-time.Hour), true)
	send("f2", crm.CategoryMarketing, now.Add(-8*24*time.Hour), true)
	// f3: transactional mail does not count.
	for range 3 {
		send("f3", crm.CategoryTransactional, now.Add(-time.Hour), true)
	}
	// f4: claims that did not go out (yet) do not count.
	for range 3 {
		send("f4", crm.CategoryMarketing, time.Time{}, false)
	}

	weekly := &crm.MarketingCap{Max: 3, Window: 7 * 24 * time.Hour}
	rs := page(t, s, crm.SegmentQuery{Cap: weekly})
	require.Equal(t, map[string]crm.Skip{"f1": crm.SkipFrequencyCap, "f2": crm.SkipNone, "f3": crm.SkipNone,
		"f4": crm.SkipNone, "f5": crm.SkipNone}, skips(rs))
	require.Equal(t, []int{3, 2, 0, 0, 0}, []int{rs[0].RecentMarketing, rs[1].RecentMarketing, rs[2].RecentMarketing, rs[3].RecentMarketing, rs[4].RecentMarketing})
	// A tighter cap catches f2 as well; without a cap nobody is flagged.
	rs = page(t, s, crm.SegmentQuery{Cap: &crm.MarketingCap{Max: 2, Window: 24 * time.Hour}})
	require.Equal(t, crm.SkipFrequencyCap, skips(rs)["f2"])
	require.Equal(t, crm.SkipNone, skips(rs)["f1"], "only one of f1's sends is within a day")
	for _, r := range page(t, s, crm.SegmentQuery{}) {
		require.Equal(t, crm.SkipNone, r.Skip)
	}
}

func TestSegmentPageSeesTheMessagesLedger(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"l1", "l2", "l3", "l4", "l5"} {
		mustUpsert(t, s, contact(id))
	}
	claimKey := func(id string) crm.SendClaim {
		return crm.SendClaim{Key: id + suffix, CustomerID: id, Email: id + "@example.com", Template: "t",
			Category: crm.CategoryMarketing, MessageID: "<" + id + "@x>"}
	}
	requireClaim(t, s, claimKey("l1"), crm.ClaimNew)
	require.NoError(t, s.MarkSent(ctx, "l1"+suffix, time.Now()))
	requireClaim(t, s, claimKey("l2"), crm.ClaimNew)
	require.NoError(t, s.MarkFailed(ctx, "l2"+suffix, "550 no such user", true))
	requireClaim(t, s, claimKey("l3"), crm.ClaimNew) // in flight: the claim decides
	requireClaim(t, s, claimKey("l4"), crm.ClaimNew)
	require.NoError(t, s.MarkFailed(ctx, "l4"+suffix, "timeout", false)) // transient: retry
	// Another message's sends do not matter.
	other := claimKey("l5")
	other.Key = "l5/broadcast/other"
	requireClaim(t, s, other, crm.ClaimNew)
	require.NoError(t, s.MarkSent(ctx, other.Key, time.Now()))

	// l1's own send is sent: it is already_sent, not capped by itself.
	rs := page(t, s, crm.SegmentQuery{SendKeySuffix: suffix, Cap: &crm.MarketingCap{Max: 1, Window: time.Hour}})
	require.Equal(t, map[string]crm.Skip{"l1": crm.SkipAlreadySent, "l2": crm.SkipFailed, "l3": crm.SkipNone,
		"l4": crm.SkipNone, "l5": crm.SkipFrequencyCap}, skips(rs))
}

func TestSegmentPageKeysetOrder(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var want []string
	for i := range 53 {
		want = append(want, fmt.Sprintf("k-%03d", i))
	}
	shuffled := slices.Clone(want)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, id := range shuffled {
		mustUpsert(t, s, contact(id))
	}
	var got []string
	after, pages := "", 0
	for {
		rs := page(t, s, crm.SegmentQuery{After: after, Limit: 10})
		pages++
		got = append(got, ids(rs)...)
		if len(rs) < 10 {
			break
		}
		after = rs[len(rs)-1].CustomerID
	}
	require.Equal(t, want, got, "every contact once, in key order")
	require.Equal(t, 6, pages)

	// A contact added behind the cursor is not seen again; one ahead is.
	mustUpsert(t, s, contact("k-000a"))
	mustUpsert(t, s, contact("k-999"))
	rs := page(t, s, crm.SegmentQuery{After: "k-049", Limit: 10})
	require.Equal(t, []string{"k-050", "k-051", "k-052", "k-999"}, ids(rs))
}
