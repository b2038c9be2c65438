package activities

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
)

// The campaign's minimum gap holds across sources: a recipient who got a
// journey email within the gap is skipped by the audience query, and one
// whose journey email is in flight (claimed, not yet marked sent: what the
// query cannot see) is deferred by the claim. Both count as Deferred and
// get no broadcast ledger row; only the claim's deferral reached the
// ledger and counts in the metrics.
func TestSendPageRespectsTheMinimumGapAcrossSources(t *testing.T) {
	f := newBroadcastFixture(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	f.acts.Metrics = NewMetrics(reg)
	c, err := f.acts.Campaigns.Latest("saas-lifecycle")
	require.NoError(t, err)
	// This fixture's registry is its own: set the gap the test needs,
	// whatever the shipped file says.
	c.Sending.MinGap = campaign.Duration(4 * time.Hour)
	f.seed(t, 4, nil)

	journey := func(id string) crm.SendClaim {
		return crm.SendClaim{Key: id + "/saas-lifecycle@v1/nurture/n1", CustomerID: id, Email: id + "@bc.test",
			Template: "case_study_northwind", Category: crm.CategoryMarketing, MessageID: "<" + id + "@journey>",
			Lease: time.Minute}
	}
	_, err = f.store.ClaimSend(ctx, journey("c01"))
	require.NoError(t, err)
	require.NoError(t, f.store.MarkSent(ctx, journey("c01").Key, time.Now().Add(-time.Hour)))
	got, err := f.store.ClaimSend(ctx, journey("c02")) // in flight
	require.NoError(t, err)
	require.Equal(t, crm.ClaimNew, got)
	// Long ago: no longer in the gap.
	_, err = f.store.ClaimSend(ctx, journey("c03"))
	require.NoError(t, err)
	require.NoError(t, f.store.MarkSent(ctx, journey("c03").Key, time.Now().Add(-5*time.Hour)))

	rows, err := f.store.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, SendKeySuffix: pageInput(10).Broadcast.keySuffix(),
		MinGap: 4 * time.Hour})
	require.NoError(t, err)
	require.Equal(t, []crm.Skip{crm.SkipNone, crm.SkipMinGap, crm.SkipNone, crm.SkipNone},
		[]crm.Skip{rows[0].Skip, rows[1].Skip, rows[2].Skip, rows[3].Skip}, "the query sees sent mail only")

	r, err := f.page(t, pageInput(10), nil)
	require.NoError(t, err)
	require.Equal(t, BroadcastPageResult{Sent: 2, Deferred: 2, NextCursor: "c03", Done: true, CampaignVersion: "v1"}, r)
	require.Equal(t, []string{"c00@bc.test", "c03@bc.test"}, f.mail.to())
	for _, id := range []string{"c01", "c02"} {
		_, err := f.store.GetSend(ctx, BroadcastSendKey(id, "news-1"))
		require.ErrorIs(t, err, crm.ErrNotFound, "%s: a deferred recipient has no ledger row", id)
	}
	counts, _ := emailCounts(t, reg)
	require.Equal(t, map[string]float64{"sent": 2, "deferred": 1}, counts)
}
