package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

func TestScheduleReportCreatesAWeeklyFunnelReport(t *testing.T) {
	c := temporalClient(t)
	name := "report-test-" + testenv.RandomID(4)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.ScheduleClient().GetHandle(ctx, reportScheduleID(name)).Delete(ctx)
	})

	code, _, stderr := cli(t, "schedule", "report", name)
	assert.Equal(t, exitUsage, code, "--to is required")
	assert.Contains(t, stderr, "--to")

	code, stdout, stderr := cli(t, "schedule", "report", name, "--to", "marketing@acme.example", "--days", "14")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "report schedule "+name+" created")

	d, err := c.ScheduleClient().GetHandle(t.Context(), reportScheduleID(name)).Describe(t.Context())
	require.NoError(t, err)
	act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	assert.Equal(t, workflows.FunnelReportWorkflowName, act.Workflow)
	assert.Equal(t, workflows.FunnelReportWorkflowID(name), act.ID)
	require.Len(t, act.Args, 1)
	p, ok := act.Args[0].(*commonpb.Payload)
	require.True(t, ok)
	var in workflows.FunnelReportInput
	require.NoError(t, testDataConverter(t).FromPayload(p, &in))
	assert.Equal(t, workflows.FunnelReportInput{CampaignID: defaultCampaign, To: "marketing@acme.example", PeriodDays: 14}, in)
	require.NotEmpty(t, d.Info.NextActionTimes)
	assert.Equal(t, time.Monday, d.Info.NextActionTimes[0].UTC().Weekday())
}
