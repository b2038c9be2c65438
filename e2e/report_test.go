package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestFunnelReportEmailsTheStepsBelowTarget: a scheduled report run reads
// the week's funnel, measures it against the built-in campaign's targets
// and emails it to the marketing owner once, however often the run is
// retried.
func TestFunnelReportEmailsTheStepsBelowTarget(t *testing.T) {
	t.Parallel()
	s := newBroadcastStack(t, nil)
	s.StartWorker(t)
	run := testenv.RandomID(4)
	ctx := context.Background()
	// Ten trials this week, one of which reached sales: 10 % against the
	// target of 15 %.
	start := time.Now().Add(-48 * time.Hour)
	for i := range 10 {
		id := fmt.Sprintf("rep%02d-%s", i, run)
		require.NoError(t, s.store.UpsertContact(ctx, crm.Contact{CustomerID: id, Email: id + "@report.example",
			Consent: true, CampaignID: "saas-lifecycle", CampaignVersion: "v1", LeadSource: customer.LeadCold, TimeZone: "UTC"}))
		hops := []string{"trial"}
		if i == 0 {
			hops = append(hops, "sales")
		}
		from := ""
		for n, to := range hops {
			require.NoError(t, s.store.RecordTransition(ctx, crm.Transition{Key: fmt.Sprintf("%s/t/%d", id, n), CustomerID: id,
				From: from, To: to, Reason: "seeded", CampaignID: "saas-lifecycle", CampaignVersion: "v1", At: start.Add(time.Duration(n) * time.Hour)}))
			from = to
		}
	}
	owner := "owner-" + run + "@report.example"
	s.forgetMail(t, "report.example")
	in := workflows.FunnelReportInput{CampaignID: "saas-lifecycle", To: owner, PeriodDays: 7}
	opts := client.StartWorkflowOptions{ID: workflows.FunnelReportWorkflowID("weekly-" + run), TaskQueue: s.Cfg.Temporal.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}

	first, err := s.Client.ExecuteWorkflow(ctx, opts, workflows.FunnelReportWorkflowName, in)
	require.NoError(t, err)
	var res activities.FunnelReportResult
	require.NoError(t, first.Get(ctx, &res))
	require.Equal(t, activities.SendSent, res.Status)
	require.Equal(t, 10, res.Customers)
	require.Contains(t, res.BelowTarget, "trial/nurture → sales: 10.0% < target 15% (1 of 10)")

	msgs, err := s.Mailpit.WaitFor(ctx, "to:"+owner, 1)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0].Subject, "10 customers, 2 below target", "trial/nurture → sales (1 of 10) and sales → onboarding (0 of 1)")
	full, err := s.Mailpit.Message(ctx, msgs[0].ID)
	require.NoError(t, err)
	require.Contains(t, full.Text, "≥ 15% MISSED")
	require.True(t, strings.Contains(full.Text, "Below target (2)"), full.Text)

	// The same run again (a retry of it): no second email.
	again, err := s.Client.ExecuteWorkflow(ctx, opts, workflows.FunnelReportWorkflowName, in)
	require.NoError(t, err)
	require.NoError(t, again.Get(ctx, &res))
	require.Equal(t, activities.SendDuplicate, res.Status)
	msgs, err = s.Mailpit.Search(ctx, "to:"+owner)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
}
