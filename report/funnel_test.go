package report

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func conversion(to customer.Stage, entered, converted int, from ...customer.Stage) crm.Conversion {
	c := crm.Conversion{From: from, To: to, Entered: entered, Converted: converted}
	if entered > 0 {
		c.Rate = float64(converted) / float64(entered)
	}
	return c
}

func TestBuildFlagsTheStepsBelowTarget(t *testing.T) {
	cur := crm.Funnel{Customers: 100,
		Conversions: []crm.Conversion{
			conversion(customer.StageSales, 100, 10, customer.StageTrial, customer.StageNurture),
			conversion(customer.StageOnboarding, 10, 5, customer.StageSales),
			conversion(customer.StageActive, 0, 0, customer.StageOnboarding),
		},
		TimeInStage: []crm.StageTime{{Stage: "sales", Stays: 8, Median: 7 * 24 * time.Hour}},
	}
	prev := crm.Funnel{Customers: 80,
		Conversions: []crm.Conversion{conversion(customer.StageSales, 80, 16, customer.StageTrial, customer.StageNurture)},
		TimeInStage: []crm.StageTime{{Stage: "sales", Stays: 5, Median: 3 * 24 * time.Hour}},
	}
	targets := []campaign.Target{
		{From: []customer.Stage{customer.StageTrial, customer.StageNurture}, To: customer.StageSales, MinConversion: 0.15},
		{From: []customer.Stage{customer.StageSales}, To: customer.StageOnboarding, MinConversion: 0.30},
		{From: []customer.Stage{customer.StageOnboarding}, To: customer.StageActive, MinConversion: 0.80},
		{Stage: customer.StageSales, MaxTimeInStage: campaign.Duration(5 * 24 * time.Hour)},
		{From: []customer.Stage{customer.StageNurture}, To: customer.StageSales, MinConversion: 0.1},
	}
	r := Build(cur, &prev, targets)

	require.Len(t, r.Conversions, 3)
	assert.True(t, r.Conversions[0].Below, "10% < 15%")
	require.NotNil(t, r.Conversions[0].PreviousRate)
	assert.InDelta(t, 0.20, *r.Conversions[0].PreviousRate, 1e-9)
	assert.False(t, r.Conversions[1].Below, "50% meets 30%")
	assert.Nil(t, r.Conversions[1].PreviousRate, "nobody entered it in the previous period")
	assert.False(t, r.Conversions[2].Below, "nobody entered: no verdict")
	require.Len(t, r.TimeInStage, 1)
	assert.True(t, r.TimeInStage[0].Above, "7d > 5d")
	require.NotNil(t, r.TimeInStage[0].PreviousMedian)

	assert.Equal(t, []string{
		"trial/nurture → sales: 10.0% < target 15% (10 of 100)",
		"time in sales: median 7d > target 5d (8 stays)",
	}, r.BelowTarget)
	assert.Equal(t, []string{"nurture → sales ≥ 10%"}, r.Unmatched, "no step of the report is nurture → sales alone")
}

func TestBuildWithoutTargetsOrComparison(t *testing.T) {
	r := Build(crm.Funnel{Conversions: []crm.Conversion{conversion(customer.StageSales, 10, 1, customer.StageTrial)}}, nil, nil)
	assert.Empty(t, r.BelowTarget)
	assert.Nil(t, r.Conversions[0].Target)
	assert.Nil(t, r.Conversions[0].PreviousRate)
}

func TestPreviousPeriodIsAsLongAndJustBefore(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	from, to := PreviousPeriod(since, until)
	assert.Equal(t, time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), from)
	assert.Equal(t, since, to)
}
