package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/workflows"
)

// scheduleIDPrefix namespaces the schedules starter manages: schedule
// "broadcast/NAME" starts workflows "broadcast/NAME-<scheduled time>".
const scheduleIDPrefix = "broadcast/"

func scheduleID(name string) string { return scheduleIDPrefix + name }

// memoCron is the schedule memo field holding the cron expression as given.
const memoCron = "cron"

const scheduleLong = `Recurring broadcasts as Temporal Schedules: at each time of the cron
expression (in --time-zone) Temporal starts the broadcast workflow, which
sends the template to the segment like "starter launch broadcast".

Every run is one occurrence: Temporal starts it as broadcast/NAME-<scheduled
time> (e.g. broadcast/NAME-2026-03-09T08:00:00Z), and the send keys carry
that time, so each occurrence reaches every contact of the segment once — a
weekly digest goes out every week — while a run retried or restarted within
its occurrence skips whoever it already reached.`

func (a *app) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Recurring broadcasts (Temporal Schedules): create, list, pause, unpause, delete",
		Long:  scheduleLong,
		RunE:  needSubcommand("schedule", "create", "list", "pause", "unpause", "delete", "report"),
	}
	cmd.AddCommand(a.scheduleCreateCmd(), a.scheduleListCmd(), a.schedulePauseCmd(true), a.schedulePauseCmd(false), a.scheduleDeleteCmd(),
		a.scheduleReportCmd())
	return cmd
}

func (a *app) scheduleCreateCmd() *cobra.Command {
	var b broadcastFlags
	var cronExpr, zone, note string
	var paused bool
	var catchup time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME --cron \"0 9 * * MON\" [--time-zone Europe/Berlin] --template T --segment-stage active [...]",
		Short: "Create a schedule that starts a broadcast at every time of a cron expression",
		Long:  scheduleLong,
		Example: `  starter schedule create monday-tips --cron "0 9 * * MON" --time-zone Europe/Berlin \
      --template activation_tips --segment-stage trial --rate 20
  starter schedule create welcome-active --cron "0 10 * * *" --template review_ask --segment-stage active --paused
  starter schedule create vip-digest --cron "0 8 1 * *" --template review_ask --segment-tag vip --segment-tag product:analytics`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if cronExpr == "" {
				return usagef(`--cron is required: when to send, five fields "minute hour day-of-month month day-of-week", e.g. --cron "0 9 * * MON" (Mondays 09:00)`)
			}
			loc, err := campaign.LoadLocation(zone)
			if err != nil {
				return usagef("--time-zone %q: not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)", zone)
			}
			sched, err := parseCron(cronExpr)
			if err != nil {
				return err
			}
			in, _, err := b.input(name, "NAME", "segment-")
			if err != nil {
				return err
			}
			if catchup < time.Minute {
				return usagef("--catchup-window %s: must be at least 1m", catchup)
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			ctx := cmd.Context()
			h, err := a.client.ScheduleClient().Create(ctx, client.ScheduleOptions{
				ID:   scheduleID(name),
				Spec: client.ScheduleSpec{CronExpressions: []string{cronExpr}, TimeZoneName: zone},
				Action: &client.ScheduleWorkflowAction{
					ID:            workflows.BroadcastWorkflowID(name),
					Workflow:      workflows.BroadcastWorkflowName,
					Args:          []any{in},
					TaskQueue:     a.cfg.Temporal.TaskQueue,
					StaticSummary: fmt.Sprintf("Scheduled broadcast %s: %s", name, describeInput(in)),
				},
				// The server turns the expression into calendars; the memo
				// keeps it as written for `schedule list`.
				Memo:           map[string]any{memoCron: cronExpr},
				Overlap:        enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
				CatchupWindow:  catchup,
				PauseOnFailure: true,
				Paused:         paused,
				Note:           note,
			})
			if err != nil {
				if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
					return fmt.Errorf("a schedule named %s exists already: choose another NAME, or delete it first (starter schedule delete %s)", name, name)
				}
				return fmt.Errorf("create schedule %s: %w", name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "schedule %s created (Temporal schedule %s)\n", name, h.GetID())
			fmt.Fprintf(out, "  when      %s in %s%s\n", cronExpr, zone, map[bool]string{true: " — PAUSED (starter schedule unpause " + name + ")"}[paused])
			next := nextTimes(ctx, h, sched, loc, 3)
			fmt.Fprintf(out, "  next      %s\n", strings.Join(next, ", "))
			fmt.Fprintf(out, "  sends     %s\n", describeInput(in))
			fmt.Fprintf(out, "  workflow  %s-<scheduled time> on task queue %s; a run that fails pauses the schedule\n", workflows.BroadcastWorkflowID(name), a.cfg.Temporal.TaskQueue)
			fmt.Fprintf(out, "  note      each run is one occurrence of broadcast %q: it reaches each contact of the segment once\n", name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cronExpr, "cron", "", `when to send: "minute hour day-of-month month day-of-week", e.g. "0 9 * * MON" (required)`)
	f.StringVar(&zone, "time-zone", "UTC", "IANA time zone the cron expression is read in")
	b.register(f, true)
	f.BoolVar(&paused, "paused", false, "create the schedule paused")
	f.DurationVar(&catchup, "catchup-window", time.Hour, "a run missed while Temporal was down is still taken this late, not later")
	f.StringVar(&note, "note", "created with starter schedule create", "note shown with the schedule")
	return cmd
}

// parseCron checks a cron expression with robfig/cron's standard parser
// (five fields or a descriptor such as @daily), so a typo is reported here
// with what is wrong, not by the server.
func parseCron(expr string) (cron.Schedule, error) {
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "CRON_TZ=") || strings.HasPrefix(e, "TZ=") {
		return nil, usagef("--cron %q: give the time zone with --time-zone, not in the expression", expr)
	}
	s, err := cron.ParseStandard(e)
	if err != nil {
		return nil, usagef(`--cron %q: %v; write five fields "minute hour day-of-month month day-of-week", e.g. "0 9 * * MON" (Mondays 09:00) or "30 8 1 * *" (the 1st of every month, 08:30)`, expr, err)
	}
	return s, nil
}

// nextTimes are the schedule's next run times as the server computed
// them, or (if it does not say) as the cron expression gives them.
func nextTimes(ctx context.Context, h client.ScheduleHandle, s cron.Schedule, loc *time.Location, n int) []string {
	var times []time.Time
	if d, err := h.Describe(ctx); err == nil {
		times = d.Info.NextActionTimes
	}
	if len(times) == 0 {
		t := time.Now().In(loc)
		for range n {
			t = s.Next(t)
			times = append(times, t)
		}
	}
	out := make([]string, 0, n)
	for i, t := range times {
		if i == n {
			break
		}
		out = append(out, t.In(loc).Format("Mon 2006-01-02 15:04 MST"))
	}
	return out
}

// scheduleInfo is one broadcast schedule as `schedule list` shows it.
type scheduleInfo struct {
	Name     string         `json:"name"`
	ID       string         `json:"schedule_id"`
	Cron     []string       `json:"cron"`
	TimeZone string         `json:"time_zone"`
	Paused   bool           `json:"paused"`
	Note     string         `json:"note,omitempty"`
	Next     []time.Time    `json:"next,omitempty"`
	Last     *time.Time     `json:"last,omitempty"`
	Runs     int            `json:"runs"`
	Sends    *scheduleSends `json:"sends,omitempty"`

	input *workflows.BroadcastInput
}

// scheduleSends is what a schedule's runs send.
type scheduleSends struct {
	CampaignID        string                     `json:"campaign_id"`
	CampaignVersion   string                     `json:"campaign_version,omitempty"`
	Template          string                     `json:"template"`
	Segment           workflows.BroadcastSegment `json:"segment"`
	RatePerSecond     int                        `json:"rate_per_second,omitempty"`
	PageSize          int                        `json:"page_size,omitempty"`
	RespectQuietHours bool                       `json:"respect_quiet_hours,omitempty"`
}

func (a *app) scheduleListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the broadcast schedules: when, paused or not, next and last run, what they send",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			list, err := a.listSchedules(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(out, "No broadcast schedules. Create one: starter schedule create NAME --cron \"0 9 * * MON\" --template T --segment-stage active")
				return nil
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tWHEN\tSTATE\tNEXT RUN\tRUNS\tSENDS")
			for _, s := range list {
				state := "active"
				if s.Paused {
					state = "paused"
				}
				next := "-"
				loc, _ := campaign.LoadLocation(s.TimeZone)
				if len(s.Next) > 0 && !s.Paused {
					next = s.Next[0].In(loc).Format("2006-01-02 15:04 MST")
				}
				sends := "?"
				if s.input != nil {
					sends = describeInput(*s.input)
				}
				fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%d\t%s\n", s.Name, strings.Join(s.Cron, "; "), s.TimeZone, state, next, s.Runs, sends)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// listSchedules lists the broadcast schedules (Temporal's list is
// eventually consistent: a schedule created a moment ago may be missing).
func (a *app) listSchedules(ctx context.Context) ([]scheduleInfo, error) {
	sc := a.client.ScheduleClient()
	it, err := sc.List(ctx, client.ScheduleListOptions{PageSize: 200})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var out []scheduleInfo
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if !strings.HasPrefix(e.ID, scheduleIDPrefix) || e.WorkflowType.Name != workflows.BroadcastWorkflowName {
			continue
		}
		info := scheduleInfo{Name: strings.TrimPrefix(e.ID, scheduleIDPrefix), ID: e.ID, Paused: e.Paused, Note: e.Note, Next: e.NextActionTimes}
		d, err := sc.GetHandle(ctx, e.ID).Describe(ctx)
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("describe schedule %s: %w", e.ID, err)
		}
		fillScheduleInfo(&info, d, a.dataConverter())
		out = append(out, info)
	}
	return out, nil
}

// fillScheduleInfo reads d; dc decodes the memo and the action's
// arguments, which Describe returns as they are stored (encrypted).
func fillScheduleInfo(info *scheduleInfo, d *client.ScheduleDescription, dc converter.DataConverter) {
	if sp := d.Schedule.Spec; sp != nil {
		info.Cron, info.TimeZone = sp.CronExpressions, sp.TimeZoneName
		if len(info.Cron) == 0 {
			for _, c := range sp.Calendars {
				info.Cron = append(info.Cron, calendarString(c))
			}
		}
	}
	if info.TimeZone == "" {
		info.TimeZone = "UTC"
	}
	if st := d.Schedule.State; st != nil {
		info.Paused, info.Note = st.Paused, st.Note
	}
	if f := d.Memo.GetFields()[memoCron]; f != nil {
		var expr string
		if err := dc.FromPayload(f, &expr); err == nil && expr != "" {
			info.Cron = []string{expr}
		}
	}
	info.Next = d.Info.NextActionTimes
	if len(info.Next) > 3 {
		info.Next = info.Next[:3]
	}
	info.Runs = d.Info.NumActions
	if n := len(d.Info.RecentActions); n > 0 {
		t := d.Info.RecentActions[n-1].ScheduleTime
		info.Last = &t
	}
	if act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok && len(act.Args) == 1 {
		// Describe returns the action's arguments as payloads.
		if p, ok := act.Args[0].(*commonpb.Payload); ok {
			var in workflows.BroadcastInput
			if err := dc.FromPayload(p, &in); err == nil {
				info.input = &in
				info.Sends = &scheduleSends{CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion, Template: in.Template,
					Segment: in.Segment, RatePerSecond: in.RatePerSecond, PageSize: in.PageSize, RespectQuietHours: in.RespectQuietHours}
			}
		}
	}
}

// calendarString renders a calendar spec the server made from a cron
// expression (older servers return calendars instead of the expression).
func calendarString(c client.ScheduleCalendarSpec) string {
	r := func(rs []client.ScheduleRange) string {
		var parts []string
		for _, x := range rs {
			switch {
			case x.End > x.Start:
				parts = append(parts, fmt.Sprintf("%d-%d", x.Start, x.End))
			default:
				parts = append(parts, fmt.Sprint(x.Start))
			}
		}
		if len(parts) == 0 {
			return "*"
		}
		return strings.Join(parts, ",")
	}
	return strings.Join([]string{r(c.Minute), r(c.Hour), r(c.DayOfMonth), r(c.Month), r(c.DayOfWeek)}, " ")
}

func (a *app) schedulePauseCmd(pause bool) *cobra.Command {
	verb, short := "unpause", "Resume a paused schedule"
	if pause {
		verb, short = "pause", "Pause a schedule: no runs until it is unpaused"
	}
	var note string
	cmd := &cobra.Command{
		Use:   verb + " NAME [--note TEXT]",
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			h := a.client.ScheduleClient().GetHandle(cmd.Context(), scheduleID(name))
			var err error
			if pause {
				err = h.Pause(cmd.Context(), client.SchedulePauseOptions{Note: note})
			} else {
				err = h.Unpause(cmd.Context(), client.ScheduleUnpauseOptions{Note: note})
			}
			if err != nil {
				return scheduleErr(name, verb, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s %sd\n", name, verb)
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", verb+"d with starter", "why (shown with the schedule)")
	return cmd
}

func (a *app) scheduleDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule (broadcasts it already started go on)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			if err := a.client.ScheduleClient().GetHandle(cmd.Context(), scheduleID(name)).Delete(cmd.Context()); err != nil {
				return scheduleErr(name, "delete", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s deleted\n", name)
			return nil
		},
	}
}

func scheduleErr(name, verb string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("no schedule named %s (starter schedule list shows them)", name)
	}
	return fmt.Errorf("%s schedule %s: %w", verb, name, err)
}
