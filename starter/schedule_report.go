package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/workflows"
)

// reportScheduleID is the Temporal schedule of the funnel report NAME.
func reportScheduleID(name string) string { return workflows.FunnelReportWorkflowID(name) }

// scheduleReportCmd: starter schedule report NAME --to ADDR — a Temporal
// Schedule that emails the funnel report, measured against the campaign's
// stage targets, to the marketing owner (docs/journey.md, "Stage targets").
func (a *app) scheduleReportCmd() *cobra.Command {
	var to, cronExpr, zone string
	var days int
	cmd := &cobra.Command{
		Use:   "report NAME --to ADDRESS [--cron \"0 8 * * MON\"] [--time-zone Z] [--days 7]",
		Short: "Email the funnel report against the stage targets on a schedule (weekly by default)",
		Long: `Creates a Temporal Schedule (id report/NAME) whose every run emails the funnel
report of the last --days days — compared with the period before, measured
against the campaign's stage targets, with the steps below target listed —
to --to, once per run. The campaign is --campaign (default saas-lifecycle).
Pause or delete it with the Temporal CLI: temporal schedule toggle|delete
--schedule-id report/NAME.`,
		Example: `  starter schedule report weekly-funnel --to marketing@acme.example
  starter schedule report monthly-funnel --to cmo@acme.example --cron "0 8 1 * *" --days 30`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := customer.CheckEmail("to", to); err != nil {
				return usagef("--to %q: an email address is required (the marketing owner)", to)
			}
			if days < 1 || days > 366 {
				return usagef("--days %d: 1 to 366", days)
			}
			if _, err := campaign.LoadLocation(zone); err != nil {
				return usagef("--time-zone %q: not an IANA time zone name (e.g. Europe/Berlin, UTC)", zone)
			}
			if _, err := parseCron(cronExpr); err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			in := workflows.FunnelReportInput{CampaignID: a.campaignID, To: to, PeriodDays: days}
			h, err := a.client.ScheduleClient().Create(cmd.Context(), client.ScheduleOptions{
				ID:   reportScheduleID(name),
				Spec: client.ScheduleSpec{CronExpressions: []string{cronExpr}, TimeZoneName: zone},
				Action: &client.ScheduleWorkflowAction{
					ID: workflows.FunnelReportWorkflowID(name), Workflow: workflows.FunnelReportWorkflowName,
					Args: []any{in}, TaskQueue: a.cfg.Temporal.TaskQueue,
					StaticSummary: fmt.Sprintf("Funnel report %s of campaign %s, last %d days", name, a.campaignID, days),
				},
				Overlap:        enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
				CatchupWindow:  24 * time.Hour,
				PauseOnFailure: true,
			})
			if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
				return fmt.Errorf("a report schedule named %s exists already (temporal schedule delete --schedule-id %s)", name, reportScheduleID(name))
			}
			if err != nil {
				return fmt.Errorf("create report schedule %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "report schedule %s created (Temporal schedule %s): %s in %s, the last %d days of campaign %s to %s\n",
				name, h.GetID(), cronExpr, zone, days, a.campaignID, strings.TrimSpace(to))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "who gets the report (the marketing owner)")
	f.StringVar(&cronExpr, "cron", "0 8 * * MON", "when: a five-field cron expression")
	f.StringVar(&zone, "time-zone", "UTC", "time zone of --cron")
	f.IntVar(&days, "days", 7, "the period each report covers, in days")
	return cmd
}
