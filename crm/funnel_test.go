package crm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

const funnelDay = 24 * time.Hour

// funnelStart is when most seeded journeys start.
var funnelStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

type hop struct {
	after time.Duration // since the journey's start
	to    string
}

// seedJourney creates a contact on campaign and records its transitions
// (the first from "pending"), as the journey's activities do.
func seedJourney(t *testing.T, s *crm.Store, id, campaign string, start time.Time, hops ...hop) {
	t.Helper()
	c := contact(id)
	c.Stage, c.CampaignID = "", campaign
	mustUpsert(t, s, c)
	from := crm.StagePending
	for i, h := range hops {
		require.NoError(t, s.RecordTransition(t.Context(), crm.Transition{
			Key: fmt.Sprintf("%s/transition/%d", id, i+1), CustomerID: id, From: from, To: h.to,
			Reason: "seeded", CampaignID: campaign, At: start.Add(h.after),
		}))
		from = h.to
	}
}

// seedFunnel: eight customers on two campaigns, one of them from an older
// cohort.
func seedFunnel(t *testing.T, s *crm.Store) {
	t.Helper()
	const saas, other = "saas-lifecycle", "other"
	d := funnelDay
	// The whole way: trial 3d, nurture 7d, sales 2d, onboarding 31d, active.
	seedJourney(t, s, "c1", saas, funnelStart, hop{0, "trial"}, hop{3 * d, "nurture"}, hop{10 * d, "sales"},
		hop{12 * d, "onboarding"}, hop{43 * d, "active"})
	// A hot lead: trial and sales at the same instant, rejected after 2d.
	seedJourney(t, s, "c2", saas, funnelStart, hop{0, "trial"}, hop{0, "sales"}, hop{2 * d, "nurture"})
	// Stays in nurture.
	seedJourney(t, s, "c3", saas, funnelStart, hop{0, "trial"}, hop{3 * d, "nurture"})
	// Buys during the trial; active, at risk, reactivated after 7d.
	seedJourney(t, s, "c4", saas, funnelStart.Add(d), hop{0, "trial"}, hop{d, "onboarding"}, hop{32 * d, "active"},
		hop{62 * d, "at_risk"}, hop{69 * d, "active"})
	// Buys in nurture; active, at risk, churned.
	seedJourney(t, s, "c5", saas, funnelStart, hop{0, "trial"}, hop{3 * d, "nurture"}, hop{5 * d, "onboarding"},
		hop{36 * d, "active"}, hop{66 * d, "at_risk"}, hop{96 * d, "churned"})
	// Unsubscribes on day 1.
	seedJourney(t, s, "c6", saas, funnelStart, hop{0, "trial"}, hop{d, "unsubscribed"})
	// Another campaign.
	seedJourney(t, s, "c7", other, funnelStart, hop{0, "trial"}, hop{3 * d, "nurture"})
	// An older cohort (started in 2025).
	seedJourney(t, s, "c8", saas, time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC), hop{0, "trial"}, hop{3 * d, "nurture"})
	// A contact without any transition is not part of the funnel.
	mustUpsert(t, s, contact("no-journey"))
}

func conversions(f crm.Funnel) map[string][2]int {
	out := map[string][2]int{}
	for _, c := range f.Conversions {
		out[c.Name()] = [2]int{c.Entered, c.Converted}
	}
	return out
}

func medians(f crm.Funnel) map[string]string {
	out := map[string]string{}
	for _, st := range f.TimeInStage {
		out[st.Stage] = fmt.Sprintf("%d × %s", st.Stays, st.Median)
	}
	return out
}

func TestFunnelAllCustomers(t *testing.T) {
	s := newStore(t)
	seedFunnel(t, s)
	f, err := s.Funnel(t.Context(), crm.FunnelQuery{})
	require.NoError(t, err)

	assert.Equal(t, 8, f.Customers)
	assert.Equal(t, []crm.StageCount{
		{Stage: "nurture", Customers: 4}, {Stage: "active", Customers: 2},
		{Stage: "churned", Customers: 1}, {Stage: "unsubscribed", Customers: 1},
	}, f.Stages)

	assert.Equal(t, map[string][2]int{
		"trial → nurture":                {8, 6},
		"trial/nurture → sales":          {8, 2}, // c2's sales entry shares its instant with trial, recorded after it
		"sales → onboarding":             {2, 1},
		"onboarding → active":            {3, 3},
		"active → at_risk":               {3, 2},
		"at_risk → active (reactivated)": {2, 1},
		"at_risk → churned":              {2, 1},
		"churned → active (won back)":    {1, 0},
	}, conversions(f))
	for _, c := range f.Conversions {
		if c.To == "nurture" {
			assert.InDelta(t, 0.75, c.Rate, 1e-9)
		}
	}

	h := time.Hour
	assert.Equal(t, map[string]string{
		"trial":      fmt.Sprintf("8 × %s", 72*h),  // 0, 1d, 1d, 3d, 3d, 3d, 3d, 3d
		"nurture":    fmt.Sprintf("2 × %s", 108*h), // 2d and 7d (the rest are still in nurture)
		"sales":      fmt.Sprintf("2 × %s", 48*h),  // 2d, 2d
		"onboarding": fmt.Sprintf("3 × %s", 744*h), // 31d each
		"active":     fmt.Sprintf("2 × %s", 720*h), // 30d, 30d
		"at_risk":    fmt.Sprintf("2 × %s", 444*h), // 7d and 30d
	}, medians(f))
}

func TestFunnelByCampaignAndCohort(t *testing.T) {
	s := newStore(t)
	seedFunnel(t, s)

	f, err := s.Funnel(t.Context(), crm.FunnelQuery{CampaignID: "saas-lifecycle"})
	require.NoError(t, err)
	assert.Equal(t, 7, f.Customers, "c7 runs another campaign")
	assert.Equal(t, [2]int{7, 5}, conversions(f)["trial → nurture"])

	f, err = s.Funnel(t.Context(), crm.FunnelQuery{CampaignID: "saas-lifecycle", Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Equal(t, 6, f.Customers, "c8 started in 2025")
	assert.Equal(t, [2]int{6, 4}, conversions(f)["trial → nurture"])
	assert.Equal(t, []crm.StageCount{
		{Stage: "nurture", Customers: 2}, {Stage: "active", Customers: 2},
		{Stage: "churned", Customers: 1}, {Stage: "unsubscribed", Customers: 1},
	}, f.Stages)
	assert.Equal(t, fmt.Sprintf("6 × %s", 48*time.Hour), medians(f)["trial"], "0, 1d, 1d, 3d, 3d, 3d")

	// A period: the 2025 cohort alone (c8), the one before --since.
	f, err = s.Funnel(t.Context(), crm.FunnelQuery{CampaignID: "saas-lifecycle", Until: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Equal(t, 1, f.Customers, "only c8 started before 2026")
	f, err = s.Funnel(t.Context(), crm.FunnelQuery{CampaignID: "saas-lifecycle",
		Since: funnelStart, Until: funnelStart.Add(funnelDay)})
	require.NoError(t, err)
	assert.Equal(t, 5, f.Customers, "c4 started a day later, c8 in 2025")

	f, err = s.Funnel(t.Context(), crm.FunnelQuery{Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Zero(t, f.Customers)
	assert.Empty(t, f.Stages)
	assert.Empty(t, f.TimeInStage)
	require.Len(t, f.Conversions, len(crm.FunnelSteps), "every step is listed, with zeros")
	assert.Zero(t, f.Conversions[0].Rate)
}

// Campaign ids are data, never SQL.
func TestFunnelParametersAreNotSQL(t *testing.T) {
	s := newStore(t)
	seedFunnel(t, s)
	f, err := s.Funnel(t.Context(), crm.FunnelQuery{CampaignID: "x' OR '1'='1"})
	require.NoError(t, err)
	assert.Zero(t, f.Customers)
}

func TestFunnelByTag(t *testing.T) {
	s := newStore(t)
	seedFunnel(t, s)
	ctx := t.Context()
	// Webinar attendees: c1 (the whole way), c3 (stays in nurture), c7
	// (another campaign); the contact without a journey is not in any
	// funnel, tagged or not.
	for _, id := range []string{"c1", "c3", "c7", "no-journey"} {
		require.NoError(t, s.SetTags(ctx, id, []string{"webinar-2026"}, nil))
	}
	require.NoError(t, s.SetTags(ctx, "c2", []string{"webinar-2025"}, nil))

	f, err := s.Funnel(ctx, crm.FunnelQuery{Tag: "webinar-2026"})
	require.NoError(t, err)
	assert.Equal(t, "webinar-2026", f.Tag)
	assert.Equal(t, 3, f.Customers)
	assert.Equal(t, []crm.StageCount{{Stage: "nurture", Customers: 2}, {Stage: "active", Customers: 1}}, f.Stages)
	assert.Equal(t, [2]int{3, 3}, conversions(f)["trial → nurture"])
	assert.Equal(t, [2]int{3, 1}, conversions(f)["trial/nurture → sales"])
	assert.Equal(t, fmt.Sprintf("3 × %s", 72*time.Hour), medians(f)["trial"])

	// With the other selections (AND).
	f, err = s.Funnel(ctx, crm.FunnelQuery{Tag: "webinar-2026", CampaignID: "saas-lifecycle"})
	require.NoError(t, err)
	assert.Equal(t, 2, f.Customers, "c7 runs another campaign")

	// A tag nobody has; a tag that breaks the rules never reaches SQL.
	f, err = s.Funnel(ctx, crm.FunnelQuery{Tag: "webinar"})
	require.NoError(t, err)
	assert.Zero(t, f.Customers)
	_, err = s.Funnel(ctx, crm.FunnelQuery{Tag: "x' OR '1'='1"})
	requireInvalid(t, err, "tag")
}
