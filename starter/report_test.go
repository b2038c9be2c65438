package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/report"
)

func TestReportFunnelFromTheCRM(t *testing.T) {
	url := testenv.NewDatabase(t)
	store, err := crm.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Migrate(t.Context()))

	start := time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	seed := func(id string, hops ...any) {
		require.NoError(t, store.UpsertContact(t.Context(), crm.Contact{CustomerID: id, Email: id + "@example.com", CampaignID: "saas-lifecycle"}))
		from := ""
		for i := 0; i < len(hops); i += 2 {
			to := hops[i+1].(string)
			require.NoError(t, store.RecordTransition(t.Context(), crm.Transition{
				Key: fmt.Sprintf("%s/%d", id, i), CustomerID: id, From: from, To: to, CampaignID: "saas-lifecycle",
				At: start.Add(hops[i].(time.Duration)),
			}))
			from = to
		}
	}
	seed("a", time.Duration(0), "trial", 3*day, "nurture")
	seed("b", time.Duration(0), "trial", 2*day, "sales", 3*day, "onboarding")
	seed("c", time.Duration(0), "trial", 1*day, "nurture", 5*day, "sales")

	t.Setenv("DATABASE_URL", url)
	code, stdout, stderr := cli(t, "report", "funnel")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "reading the funnel from the CRM at")
	for _, want := range []string{
		"Funnel of all customers: 3 customers",
		"  nurture             1  33.3%",
		"  trial → nurture                       3     2  66.7%",
		"  trial/nurture → sales                 3     2  66.7%",
		"  sales → onboarding                    2     1  50.0%",
		"  onboarding → active                   1     0   0.0%",
		"  active → at_risk                      0     0      -",
		"  trial              3      2d",
		"  nurture            1      4d",
		"  sales              1      1d",
	} {
		assert.Contains(t, stdout, want)
	}

	// --tag: the customers whose contact has the tag.
	require.NoError(t, store.SetTags(t.Context(), "a", []string{"webinar-2026"}, nil))
	require.NoError(t, store.SetTags(t.Context(), "c", []string{"webinar-2026", "vip"}, nil))
	code, stdout, stderr = cli(t, "report", "funnel", "--tag", "webinar-2026")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Funnel of all customers tagged webinar-2026: 2 customers")
	assert.Contains(t, stdout, "  trial → nurture                       2     2  100.0%")
	code, stdout, stderr = cli(t, "report", "funnel", "--json", "--tag", "vip")
	require.Equal(t, 0, code, stderr)
	var tagged report.Funnel
	require.NoError(t, json.Unmarshal([]byte(stdout), &tagged))
	assert.Equal(t, "vip", tagged.Current.Tag)
	assert.Equal(t, 1, tagged.Current.Customers)

	code, stdout, stderr = cli(t, "report", "funnel", "--json", "--since", "2026-02-03", "--campaign", "saas-lifecycle")
	require.Equal(t, 0, code, stderr)
	var f report.Funnel
	require.NoError(t, json.Unmarshal([]byte(stdout), &f))
	assert.Equal(t, 0, f.Current.Customers, "everyone started on 2 February")
	assert.Equal(t, "saas-lifecycle", f.Current.CampaignID)

	// The built-in campaign's targets: onboarding → active (0 of 1)
	// misses its 80 %; the others meet theirs.
	code, stdout, stderr = cli(t, "report", "funnel")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "≥ 80% MISSED")
	assert.Contains(t, stdout, "Below target (1):\n  onboarding → active: 0.0% < target 80% (0 of 1)")

	// --compare previous: this period next to the one before it.
	code, _, stderr = cli(t, "report", "funnel", "--compare", "previous")
	assert.Equal(t, exitUsage, code, "needs --since")
	assert.Contains(t, stderr, "needs --since")
	code, stdout, stderr = cli(t, "report", "funnel", "--since", "2026-02-02", "--until", "2026-02-03", "--compare", "previous")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Previous period: 2026-02-01 to 2026-02-02, 0 customers")
	assert.Contains(t, stdout, "previous")
}

func TestReportFunnelSaysWhatToDoWithoutTheCRM(t *testing.T) {
	empty := testenv.NewDatabase(t)
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	code, _, stderr := cli(t, "report", "funnel")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "cannot reach the CRM database")
	assert.Contains(t, stderr, "set DATABASE_URL")

	// A database without the CRM tables.
	t.Setenv("DATABASE_URL", empty)
	code, _, stderr = cli(t, "report", "funnel")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "has no CRM tables")
}
