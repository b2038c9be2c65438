package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func TestWriteTextShowsTargetsAndThePreviousPeriod(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cur := crm.Funnel{Since: since, Until: since.AddDate(0, 1, 0), Customers: 10,
		Stages:      []crm.StageCount{{Stage: "trial", Customers: 9}, {Stage: "sales", Customers: 1}},
		Conversions: []crm.Conversion{conversion(customer.StageSales, 10, 1, customer.StageTrial, customer.StageNurture)},
	}
	prev := crm.Funnel{Since: since.AddDate(0, -1, 0), Until: since, Customers: 4,
		Conversions: []crm.Conversion{conversion(customer.StageSales, 4, 1, customer.StageTrial, customer.StageNurture)}}
	targets := []campaign.Target{{From: []customer.Stage{customer.StageTrial, customer.StageNurture}, To: customer.StageSales, MinConversion: 0.15}}
	var b strings.Builder
	require.NoError(t, WriteText(&b, Build(cur, &prev, targets)))
	out := b.String()
	for _, want := range []string{
		"Funnel of customers whose journey started since 2026-11-01 and before 2026-12-01: 10 customers",
		"Previous period: 2026-10-01 to 2026-11-01, 4 customers",
		"previous",
		"25.0%",
		"≥ 15% MISSED",
		"Below target (1):\n  trial/nurture → sales: 10.0% < target 15% (1 of 10)",
	} {
		assert.Contains(t, out, want)
	}

	b.Reset()
	require.NoError(t, WriteText(&b, Build(cur, nil, nil)))
	assert.Contains(t, b.String(), "No stage targets")
	assert.NotContains(t, b.String(), "previous")
}
