package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/broadcast"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/workflows"
)

func (a *app) launchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Launch a broadcast, or check a new campaign version before deploying it",
		RunE:  needSubcommand("launch", "broadcast", "campaign"),
	}
	cmd.AddCommand(a.launchBroadcastCmd(), a.launchCampaignCmd())
	return cmd
}

// broadcastFlags are the flags that describe a broadcast (launch broadcast
// and schedule create share them).
type broadcastFlags struct {
	campaign          string
	template          string
	stages            []string
	minScore          optionalInt
	leadSources       []string
	idPrefix          string
	all               bool
	rate              int
	pageSize          int
	respectQuietHours bool
}

// register adds the flags; segment flags get both spellings (--stage and
// --segment-stage), the other one hidden.
func (b *broadcastFlags) register(f *pflag.FlagSet, segmentPrefix bool) {
	f.StringVar(&b.campaign, "campaign", defaultCampaign, "campaign holding the template: ID (latest version when sending) or ID@VERSION")
	f.StringVar(&b.template, "template", "", "template id in the campaign (required)")
	names := map[string]string{"stage": "segment-stage", "min-score": "segment-min-score", "lead-source": "segment-lead-source", "id-prefix": "segment-id-prefix"}
	for short, long := range names {
		primary, alias := short, long
		if segmentPrefix {
			primary, alias = long, short
		}
		for _, name := range []string{primary, alias} {
			switch short {
			case "stage":
				f.StringSliceVar(&b.stages, name, nil, "segment: contacts in this stage (repeatable, or comma-separated): "+strings.Join(stageNames(), ", "))
			case "min-score":
				f.Var(&b.minScore, name, "segment: contacts with at least this lead score")
			case "lead-source":
				f.StringSliceVar(&b.leadSources, name, nil, "segment: contacts from this lead source (repeatable): "+strings.Join(workflows.LeadSources, ", "))
			case "id-prefix":
				f.StringVar(&b.idPrefix, name, "", "segment: customer ids starting with this")
			}
		}
		_ = f.MarkHidden(alias)
	}
	f.BoolVar(&b.all, "all-contacts", false, "send to every contact with marketing consent (no segment filter)")
	f.IntVar(&b.rate, "rate", 0, "emails per second at most (0: as fast as the worker's SMTP connections go)")
	f.IntVar(&b.pageSize, "page-size", 0, fmt.Sprintf("contacts per page (default %d, at most %d)", broadcast.DefaultPageSize, broadcast.MaxPageSize))
	f.BoolVar(&b.respectQuietHours, "respect-quiet-hours", false, "skip (defer) recipients inside the campaign's quiet hours in their time zone")
}

// optionalInt is an int flag that may be absent.
type optionalInt struct{ v *int }

func (o *optionalInt) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.Itoa(*o.v)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	o.v = &n
	return nil
}

func (o *optionalInt) Type() string { return "int" }

func stageNames() []string {
	return []string{"trial", "nurture", "sales", "onboarding", "active", "at_risk", "churned"}
}

// input builds and checks the broadcast input; errors say which flag.
func (b *broadcastFlags) input(id, idName, stagePrefix string) (broadcast.Input, *campaign.Campaign, error) {
	if b.template == "" {
		return broadcast.Input{}, nil, usagef("--template is required: the id of the email template in campaign %s", b.campaign)
	}
	seg := broadcast.Segment{Stages: b.stages, LeadSources: b.leadSources, CustomerIDPrefix: b.idPrefix}
	seg.MinScore = b.minScore.v
	if !b.all && len(seg.Stages) == 0 && seg.MinScore == nil && len(seg.LeadSources) == 0 && seg.CustomerIDPrefix == "" {
		return broadcast.Input{}, nil, usagef("say who gets it: --%sstage active (repeatable), --%smin-score N, --%slead-source SOURCE, --%sid-prefix P, or --all-contacts for everyone with marketing consent",
			stagePrefix, stagePrefix, stagePrefix, stagePrefix)
	}
	if b.all && (len(seg.Stages) > 0 || seg.MinScore != nil || len(seg.LeadSources) > 0 || seg.CustomerIDPrefix != "") {
		return broadcast.Input{}, nil, usagef("--all-contacts and segment flags exclude each other")
	}
	reg, err := deployedCampaigns()
	if err != nil {
		return broadcast.Input{}, nil, err
	}
	c, err := pickCampaign(reg, b.campaign)
	if err != nil {
		return broadcast.Input{}, nil, err
	}
	if _, ok := c.Templates[b.template]; !ok {
		ids := make([]string, 0, len(c.Templates))
		for id := range c.Templates {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return broadcast.Input{}, nil, usagef("--template %q: campaign %s has no such template%s; its templates: %s",
			b.template, c.Key(), didYouMean(b.template, ids), strings.Join(ids, ", "))
	}
	if _, err := c.Render(b.template, campaign.SampleTemplateData(c)); err != nil {
		return broadcast.Input{}, nil, fmt.Errorf("template %s does not render: %w", b.template, err)
	}
	in := broadcast.Input{
		BroadcastID: id, CampaignID: c.ID, Template: b.template, Segment: seg,
		RatePerSecond: b.rate, PageSize: b.pageSize, RespectQuietHours: b.respectQuietHours,
	}
	if strings.Contains(b.campaign, "@") {
		in.CampaignVersion = c.Version
	}
	if err := in.Validate(); err != nil {
		var ie *broadcast.InputError
		if errors.As(err, &ie) {
			name := flagFor(ie.Field, stagePrefix)
			if ie.Field == "broadcast_id" {
				name = idName
			}
			return broadcast.Input{}, nil, usagef("%s: %s", name, ie.Problem)
		}
		return broadcast.Input{}, nil, &usageError{err}
	}
	return in, c, nil
}

// flagFor names the flag behind an input field.
func flagFor(field, stagePrefix string) string {
	switch {
	case strings.HasPrefix(field, "segment.stages"):
		return "--" + stagePrefix + "stage"
	case strings.HasPrefix(field, "segment.lead_sources"):
		return "--" + stagePrefix + "lead-source"
	case strings.HasPrefix(field, "segment.customer_id_prefix"):
		return "--" + stagePrefix + "id-prefix"
	case field == "rate_per_second":
		return "--rate"
	case field == "page_size":
		return "--page-size"
	}
	return field
}

func didYouMean(s string, options []string) string {
	best, bestD := "", 1<<30
	for _, o := range options {
		if d := levenshtein(s, o); d < bestD {
			best, bestD = o, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func describeInput(in broadcast.Input) string {
	version := in.CampaignVersion
	if version == "" {
		version = "latest version when it runs"
	}
	var seg []string
	if len(in.Segment.Stages) > 0 {
		seg = append(seg, "stage "+strings.Join(in.Segment.Stages, "/"))
	}
	if in.Segment.MinScore != nil {
		seg = append(seg, fmt.Sprintf("score ≥ %d", *in.Segment.MinScore))
	}
	if len(in.Segment.LeadSources) > 0 {
		seg = append(seg, "lead source "+strings.Join(in.Segment.LeadSources, "/"))
	}
	if in.Segment.CustomerIDPrefix != "" {
		seg = append(seg, fmt.Sprintf("id starting %q", in.Segment.CustomerIDPrefix))
	}
	who := "every contact"
	if len(seg) > 0 {
		who = "contacts with " + strings.Join(seg, ", ")
	}
	rate := "unthrottled"
	if in.RatePerSecond > 0 {
		rate = fmt.Sprintf("at most %d/s", in.RatePerSecond)
	}
	quiet := ""
	if in.RespectQuietHours {
		quiet = ", deferring recipients in quiet hours"
	}
	return fmt.Sprintf("template %s of %s (%s) to %s with marketing consent, %s%s", in.Template, in.CampaignID, version, who, rate, quiet)
}

func (a *app) launchBroadcastCmd() *cobra.Command {
	var b broadcastFlags
	var id string
	var wait bool
	cmd := &cobra.Command{
		Use:   "broadcast --id ID --template T [--campaign ID] [--stage active ...] [--min-score N] [--rate N] [--wait]",
		Short: "Send a one-off message (greeting, announcement) to a CRM segment",
		Long: `Starts a broadcast: the worker sends the template to every contact of the
segment page by page, exactly once per recipient, applying consent, the
suppression list and the frequency cap (and quiet hours with
--respect-quiet-hours). Progress shows in the Temporal UI (workflow
broadcast/ID) and, with --wait, here.

The id names the broadcast for good: a recipient gets a broadcast id's message
at most once, ever. Starting an id that is running or completed is refused;
one that failed or was cancelled may be started again and skips whoever got it.

--wait without --template follows a broadcast that was started before.`,
		Example: `  starter launch broadcast --id summer-2026 --template holiday_midyear --stage active --rate 50 --wait
  starter launch broadcast --id webinar-invite --template webinar_live_demo --stage nurture --min-score 25
  starter launch broadcast --id summer-2026 --wait     # follow it again`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usagef("--id is required: a name for this broadcast, e.g. --id summer-2026 (it is used once: recipients get it at most once)")
			}
			if b.template == "" && wait {
				if err := a.connect(); err != nil {
					return err
				}
				defer a.client.Close()
				return a.follow(cmd, id, nil)
			}
			in, _, err := b.input(id, "--id", "")
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.client.Close()
			run, err := broadcast.Start(cmd.Context(), a.client, a.cfg.Temporal.TaskQueue, in)
			if err != nil {
				if errors.Is(err, broadcast.ErrAlreadyStarted) {
					return fmt.Errorf("%w\n(to watch it: starter launch broadcast --id %s --wait)", err, id)
				}
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "broadcast %s started: %s\n", id, describeInput(in))
			fmt.Fprintf(out, "  workflow  %s (run %s) on task queue %s\n", broadcast.WorkflowID(id), run.GetRunID(), a.cfg.Temporal.TaskQueue)
			fmt.Fprintf(out, "  UI        %s\n", workflowURL(a.cfg.Temporal.Namespace, broadcast.WorkflowID(id)))
			if !wait {
				fmt.Fprintf(out, "  follow    starter launch broadcast --id %s --wait\n", id)
				return nil
			}
			return a.follow(cmd, id, run)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "broadcast id (required): letters, digits, . _ : -; used once")
	b.register(f, false)
	f.BoolVar(&wait, "wait", false, "show progress every second until the broadcast is done")
	return cmd
}

// follow shows a broadcast's progress every second until it is done.
func (a *app) follow(cmd *cobra.Command, id string, run client.WorkflowRun) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if run == nil {
		run = a.client.GetWorkflow(ctx, broadcast.WorkflowID(id), "")
	}
	ended := make(chan error, 1)
	go func() {
		var p broadcast.Progress
		ended <- run.Get(ctx, &p)
	}()
	tty := isTerminal(stderr)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last string
	lastPrint := time.Time{}
	waiting := false
	show := func(p broadcast.Progress) {
		line := fmt.Sprintf("sent %d · duplicate %d · suppressed %d · failed %d · deferred %d · %s",
			p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred, pages(p.Pages))
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r\033[K  %s", line)
		case line != last || time.Since(lastPrint) > 30*time.Second:
			fmt.Fprintf(stderr, "  %s\n", line)
			lastPrint = time.Now()
		}
		last = line
	}
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(stderr)
			}
			return fmt.Errorf("stopped watching; the broadcast goes on in the worker (starter launch broadcast --id %s --wait follows it again)", id)
		case err := <-ended:
			if tty {
				fmt.Fprintln(stderr)
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, perr := broadcast.GetProgress(qctx, a.client, id)
			cancel()
			if err != nil {
				return fmt.Errorf("broadcast %s failed: %w\n(the workflow's history in the Temporal UI says why: %s; fix the cause and start it again with the same --id: whoever got it is skipped)",
					id, err, workflowURL(a.cfg.Temporal.Namespace, broadcast.WorkflowID(id)))
			}
			if perr == nil {
				printProgress(cmd.OutOrStdout(), id, p)
			}
			return nil
		case <-tick.C:
			qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			p, err := broadcast.GetProgress(qctx, a.client, id)
			cancel()
			if err != nil {
				if !waiting {
					fmt.Fprintf(stderr, "  waiting for a worker on task queue %s to answer (%v)\n", a.cfg.Temporal.TaskQueue, shortErr(err))
					waiting = true
				}
				continue
			}
			waiting = false
			show(p)
		}
	}
}

func printProgress(w io.Writer, id string, p broadcast.Progress) {
	took := ""
	if !p.FinishedAt.IsZero() {
		took = " in " + p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "broadcast %s done%s: %d recipients — sent %d, duplicate %d, suppressed %d, failed %d, deferred %d (%s)\n",
		id, took, p.Recipients(), p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred, pages(p.Pages))
	if p.Deferred > 0 {
		fmt.Fprintf(w, "  %d deferred (frequency cap or quiet hours) were not sent; a new broadcast id reaches them later\n", p.Deferred)
	}
}

func pages(n int) string {
	if n == 1 {
		return "1 page"
	}
	return fmt.Sprintf("%d pages", n)
}

func workflowURL(namespace, workflowID string) string {
	base := os.Getenv("TEMPORAL_UI_URL")
	if base == "" {
		base = "http://localhost:8233"
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimRight(base, "/"), url.PathEscape(namespace), url.PathEscape(workflowID))
}

func (a *app) launchCampaignCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "campaign --file FILE",
		Short: "Check a new campaign version and show what deploying it would change",
		Long: `Validates a campaign version file (the same checks the worker makes), compares
it with the versions deployed now (built into starter and in CAMPAIGN_DIR),
and says what would change for journeys once the workers load it:

  - new journeys start on the newest version at once;
  - running journeys keep their version until their next stage boundary,
    then move to the newest one (a sequence in progress is never re-pointed);
  - the versions running journeys use must stay deployed.

It deploys nothing. To deploy, put the file in the workers' CAMPAIGN_DIR and
restart the workers (they load campaigns when they start). Preview the new
version first: starter simulate --campaign-file FILE --script SCRIPT.`,
		Example: `  starter launch campaign --file campaigns/saas-lifecycle-v2.yaml`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("--file is required: the campaign version file (YAML) to check")
			}
			c, err := campaign.LoadFile(file)
			if errors.Is(err, os.ErrNotExist) {
				return usagef("--file %s: no such file", file)
			}
			if err != nil {
				return fmt.Errorf("%s is not a valid campaign version; nothing changed. Fix it and run again:\n%w", file, err)
			}
			reg, err := deployedCampaigns()
			if err != nil {
				return err
			}
			return a.explainCampaign(cmd, file, c, reg)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "campaign version file to check (required)")
	return cmd
}

func (a *app) explainCampaign(cmd *cobra.Command, file string, c *campaign.Campaign, reg *campaign.Registry) error {
	out := cmd.OutOrStdout()
	dir := os.Getenv("CAMPAIGN_DIR")
	fmt.Fprintf(out, "%s: campaign %s, valid (%d templates, each renders).\n\n", file, c.Key(), len(c.Templates))
	versions := reg.Versions(c.ID)
	if existing, err := reg.Get(c.ID, c.Version); err == nil {
		if campaign.SameContent(existing, c) {
			fmt.Fprintf(out, "This exact version is already deployed (%s). Nothing would change.\n", existing.Source)
			return nil
		}
		return fmt.Errorf("version %s of %s is already deployed (%s) with different content: a published version never changes — "+
			"give this file a new version (e.g. raise `version:`), then run again", c.Version, c.ID, existing.Source)
	}
	var latest *campaign.Campaign
	if len(versions) > 0 {
		latest, _ = reg.Get(c.ID, versions[len(versions)-1])
	}
	if latest == nil {
		fmt.Fprintf(out, "No campaign %q is deployed yet: this is a new campaign.\n", c.ID)
		fmt.Fprintf(out, "  - Journeys start on it when they are started with it (starter --campaign %s, the API's -campaign flag).\n", c.ID)
	} else {
		fmt.Fprintf(out, "Deployed versions of %s: %s (newest %s, %s).\n", c.ID, strings.Join(versions, ", "), latest.Version, latest.Source)
		if campaign.CompareVersions(c.Version, latest.Version) < 0 {
			fmt.Fprintf(out, "\nWARNING: %s sorts before the newest deployed version %s, so no journey would move to it:\n"+
				"journeys always take the newest version. Give it a higher version (versions compare like v9 < v10, 2026-02-01 < 2026-11-01).\n",
				c.Version, latest.Version)
		}
		fmt.Fprintf(out, "\nChanges from %s to %s:\n", latest.Key(), c.Key())
		changes := diffCampaigns(latest, c)
		if len(changes) == 0 {
			fmt.Fprintln(out, "  (none apart from the version)")
		}
		for _, ch := range changes {
			fmt.Fprintf(out, "  %s\n", ch)
		}
		fmt.Fprintf(out, "\nOnce the workers load it:\n")
		fmt.Fprintf(out, "  - new journeys start on %s at once;\n", c.Version)
		fmt.Fprintf(out, "  - running journeys stay on their version until their next stage boundary (trial → nurture, a handoff, a purchase...),\n")
		fmt.Fprintf(out, "    then continue on %s; steps of a sequence in progress keep the old version, so nobody gets a step twice or skips one;\n", c.Version)
		fmt.Fprintf(out, "  - keep every deployed version (%s) until no running journey reports it (search attribute CampaignVersion).\n", strings.Join(versions, ", "))
		a.countJourneys(cmd, c.ID, versions)
	}
	fmt.Fprintf(out, "\nTo deploy (this command changed nothing):\n")
	if dir != "" {
		fmt.Fprintf(out, "  cp %s %s/   # CAMPAIGN_DIR of this shell; the workers' must be the same directory\n", file, dir)
	} else {
		fmt.Fprintf(out, "  cp %s \"$CAMPAIGN_DIR\"/   # the directory the workers read campaign files from (CAMPAIGN_DIR; unset here)\n", file)
	}
	fmt.Fprintf(out, "  then restart the workers: they load campaigns when they start.\n")
	fmt.Fprintf(out, "Preview it first: starter simulate --campaign-file %s --script simulate/testdata/jane.yaml\n", file)
	return nil
}

// countJourneys prints how many running journeys use each version, when
// Temporal answers within a few seconds (best effort: the check works
// without it).
func (a *app) countJourneys(cmd *cobra.Command, id string, versions []string) {
	out := cmd.OutOrStdout()
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	if err := a.connectCtx(ctx); err != nil {
		fmt.Fprintf(out, "  (running journeys per version not counted: %s)\n", shortErr(err))
		return
	}
	defer a.client.Close()
	for _, v := range versions {
		q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND CampaignVersion = '%s@%s'",
			workflows.WorkflowName, escapeQuery(id), escapeQuery(v))
		res, err := a.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: a.cfg.Temporal.Namespace, Query: q})
		if err != nil {
			fmt.Fprintf(out, "  (running journeys per version not counted: %s)\n", shortErr(err))
			return
		}
		fmt.Fprintf(out, "  running journeys on %s@%s: %d\n", id, v, res.GetCount())
	}
}

func escapeQuery(s string) string { return strings.ReplaceAll(s, "'", "\\'") }
