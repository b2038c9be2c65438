package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
)

// A broadcast sends a one-off message (a holiday greeting, an
// announcement) to a CRM segment, durably and exactly once per recipient
// (docs/broadcast.md). One Broadcast workflow, ID "broadcast/<BroadcastID>",
// loops over the pages of the segment: one BroadcastSendPage activity per
// page, which sends the page with the journey's send protocol. Workflow
// tasks stay a few per page, whatever the page size: the Temporal server is
// not on the per-recipient path.

// BroadcastPagesPerRun is how many pages one run of the broadcast workflow
// sends before it continues as new (earlier when Temporal suggests it),
// carrying Cursor and Progress: a run's history stays a few hundred events
// whatever the segment size.
const BroadcastPagesPerRun = 50

// broadcastPagesPerRun is BroadcastPagesPerRun; tests lower it.
var broadcastPagesPerRun = BroadcastPagesPerRun

// broadcastPageTimeout bounds one page attempt: generous, because a dead
// worker is noticed by the heartbeat timeout, not by this; a throttled
// page needs PageSize/RatePerSecond seconds.
func broadcastPageTimeout(in BroadcastInput) time.Duration {
	d := 10 * time.Minute
	if in.RatePerSecond > 0 {
		d += 2 * time.Duration(in.broadcast().PageSizeOrDefault()/in.RatePerSecond+1) * time.Second
	}
	return d
}

// BroadcastWorkflow is the broadcast workflow (registered as
// BroadcastWorkflowName): it sends the segment page by page, one
// BroadcastSendPage activity per page, and returns the final progress.
func BroadcastWorkflow(ctx workflow.Context, in BroadcastInput) (BroadcastProgress, error) {
	if err := in.Validate(); err != nil {
		return in.Progress, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrBadInput, err)
	}
	logger := workflow.GetLogger(ctx)
	p := in.Progress
	if p.StartedAt.IsZero() {
		p.StartedAt = workflow.Now(ctx)
	}
	if in.Cursor != "" {
		p.Cursor = in.Cursor
	}
	if err := workflow.SetQueryHandler(ctx, QueryBroadcastProgress, func() (BroadcastProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: broadcastPageTimeout(in),
		HeartbeatTimeout:    activities.BroadcastHeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrBadInput, activities.ErrTemplate},
		},
	})
	publishBroadcast(ctx, in, p)

	// The activity gets the input without the carried state.
	page := in.broadcast()
	// A run started by a Temporal Schedule is one occurrence of a
	// recurring broadcast: each occurrence reaches a contact once. Runs
	// started before this change keep their keys (a run half-way through
	// an occurrence must not send its first half again).
	if workflow.GetVersion(ctx, "broadcast-occurrence", workflow.DefaultVersion, 1) == 1 {
		page.Occurrence = broadcastOccurrence(workflow.GetInfo(ctx).WorkflowExecution.ID, in.BroadcastID)
	}
	for run := 0; !p.Done; run++ {
		if run >= broadcastPagesPerRun || (run > 0 && workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			next := in
			next.CampaignVersion = page.CampaignVersion
			next.Cursor, next.Progress = p.Cursor, p
			logger.Info("broadcast continues as new", "pages", p.Pages, "cursor", p.Cursor)
			return p, workflow.NewContinueAsNewError(ctx, BroadcastWorkflowName, next)
		}
		var r activities.BroadcastPageResult
		err := workflow.ExecuteActivity(actx, a.BroadcastSendPage, activities.BroadcastPageInput{Broadcast: page, Cursor: p.Cursor}).Get(ctx, &r)
		if err != nil {
			publishBroadcast(ctx, in, p)
			return p, fmt.Errorf("broadcast %s: page %d after %q: %w", in.BroadcastID, p.Pages+1, p.Cursor, err)
		}
		if page.CampaignVersion == "" && r.CampaignVersion != "" {
			// Later pages (and runs) render with the version the first
			// page used, even if a newer one is deployed meanwhile.
			page.CampaignVersion = r.CampaignVersion
		}
		p.add(r)
		p.Pages++
		if r.NextCursor != "" {
			p.Cursor = r.NextCursor
		}
		if r.Done {
			p.Done = true
			p.FinishedAt = workflow.Now(ctx)
		}
		publishBroadcast(ctx, in, p)
	}
	logger.Info("broadcast done", "sent", p.Sent, "duplicate", p.Duplicate, "suppressed", p.Suppressed,
		"failed", p.Failed, "deferred", p.Deferred, "pages", p.Pages)
	return p, nil
}

// publishBroadcast shows the progress in the UI (current details).
func publishBroadcast(ctx workflow.Context, in BroadcastInput, p BroadcastProgress) {
	state := "sending"
	if p.Done {
		state = "done in " + p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond).String()
	}
	cursor := p.Cursor
	if cursor == "" {
		cursor = "(start)"
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf(
		"**Broadcast** %s (%s)  \n**Template** %s of %s  \n**Sent** %d · **duplicate** %d · **suppressed** %d · **failed** %d · **deferred** %d  \n**Pages** %d · **cursor** %s",
		in.BroadcastID, state, in.Template, campaignKey(in.CampaignID, in.CampaignVersion),
		p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred, p.Pages, cursor))
}

// broadcastOccurrence is the occurrence a scheduled run sends: a Temporal
// Schedule starts each run as "<action's workflow ID>-<scheduled time,
// RFC 3339>", so the suffix after "broadcast/<id>-" names it. A one-off
// broadcast (workflow ID "broadcast/<id>") has none.
func broadcastOccurrence(workflowID, broadcastID string) string {
	occurrence, ok := strings.CutPrefix(workflowID, BroadcastWorkflowID(broadcastID)+"-")
	if !ok {
		return ""
	}
	// Only a scheduled time is an occurrence, not the tail of a longer id.
	if _, err := time.Parse(time.RFC3339, occurrence); err != nil {
		return ""
	}
	return occurrence
}
