package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
)

// FunnelReportWorkflowName is the registered name of FunnelReportWorkflow.
const FunnelReportWorkflowName = "FunnelReport"

// FunnelReportInput is a scheduled funnel report: the period up to the
// run's start, compared with the one before, emailed to To.
type FunnelReportInput struct {
	CampaignID string `json:"campaign_id,omitempty"`
	To         string `json:"to"`
	// PeriodDays is the report's period (7: the last week).
	PeriodDays int `json:"period_days"`
}

// FunnelReportWorkflowID is the workflow ID of the report schedule NAME's
// runs (a Temporal Schedule appends each run's scheduled time).
func FunnelReportWorkflowID(name string) string { return "report/" + name }

// FunnelReportWorkflow sends one funnel report (docs/journey.md, "Stage
// targets"): started by a Temporal Schedule (`starter schedule report`),
// each run reports the period that ends when it starts; its workflow ID
// keys the email, so a retried run does not send it twice.
func FunnelReportWorkflow(ctx workflow.Context, in FunnelReportInput) (activities.FunnelReportResult, error) {
	if in.PeriodDays < 1 || in.PeriodDays > 366 {
		err := fmt.Errorf("period_days: %d is not 1 to 366", in.PeriodDays)
		return activities.FunnelReportResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrBadInput, err)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrBadInput},
		},
	})
	var out activities.FunnelReportResult
	err := workflow.ExecuteActivity(actx, a.SendFunnelReport, activities.FunnelReportInput{
		ReportID: workflow.GetInfo(ctx).WorkflowExecution.ID, CampaignID: in.CampaignID, To: in.To,
		Until: workflow.Now(ctx), Period: time.Duration(in.PeriodDays) * 24 * time.Hour,
	}).Get(ctx, &out)
	return out, err
}
