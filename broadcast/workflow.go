package broadcast

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PagesPerRun is how many pages one workflow run sends before it continues
// as new (earlier when Temporal suggests it), carrying Cursor and Progress:
// a run's history stays a few hundred events whatever the segment size.
const PagesPerRun = 50

// HeartbeatTimeout is the SendPage activity's heartbeat timeout: a page
// whose worker died is retried (from its last heartbeat) this long after
// the last heartbeat arrived.
const HeartbeatTimeout = 20 * time.Second

// Error types the workflow does not retry.
const (
	ErrBadInput = "BadInput"      // the input can never succeed
	ErrTemplate = "TemplateError" // the template does not render
)

// pagesPerRun is PagesPerRun; tests lower it.
var pagesPerRun = PagesPerRun

// PageInput asks SendPage for the page after Cursor.
type PageInput struct {
	Input  Input  `json:"input"`
	Cursor string `json:"cursor,omitempty"`
}

// PageResult is what one page did; every contact of the page is counted in
// exactly one of Sent, Duplicate, Suppressed, Failed, Deferred.
type PageResult struct {
	Sent       int `json:"sent"`
	Duplicate  int `json:"duplicate"`
	Suppressed int `json:"suppressed"`
	Failed     int `json:"failed"`
	Deferred   int `json:"deferred"`
	// NextCursor is the last customer ID of the page (the next page starts
	// after it); Done says the segment is exhausted.
	NextCursor string `json:"next_cursor"`
	Done       bool   `json:"done"`
	// CampaignVersion is the version the page was rendered with; the
	// workflow pins it when the input asked for the latest.
	CampaignVersion string `json:"campaign_version,omitempty"`
}

func (r *PageResult) add(o PageResult) {
	r.Sent += o.Sent
	r.Duplicate += o.Duplicate
	r.Suppressed += o.Suppressed
	r.Failed += o.Failed
	r.Deferred += o.Deferred
}

// Recipients is the number of contacts the page handled.
func (r PageResult) Recipients() int {
	return r.Sent + r.Duplicate + r.Suppressed + r.Failed + r.Deferred
}

// pageTimeout bounds one SendPage attempt: generous, because a dead worker
// is noticed by the heartbeat timeout, not by this; a throttled page needs
// PageSize/RatePerSecond seconds.
func pageTimeout(in Input) time.Duration {
	d := 10 * time.Minute
	if in.RatePerSecond > 0 {
		d += 2 * time.Duration(in.pageSize()/in.RatePerSecond+1) * time.Second
	}
	return d
}

// Workflow is the broadcast workflow (registered as WorkflowName): it sends
// the segment page by page, one SendPage activity per page, and returns the
// final Progress.
func Workflow(ctx workflow.Context, in Input) (Progress, error) {
	if err := in.Validate(); err != nil {
		return in.Progress, temporal.NewNonRetryableApplicationError(err.Error(), ErrBadInput, err)
	}
	logger := workflow.GetLogger(ctx)
	p := in.Progress
	if p.StartedAt.IsZero() {
		p.StartedAt = workflow.Now(ctx)
	}
	if in.Cursor != "" {
		p.Cursor = in.Cursor
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return p, nil }); err != nil {
		return p, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: pageTimeout(in),
		HeartbeatTimeout:    HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{ErrBadInput, ErrTemplate},
		},
	})
	publish(ctx, in, p)

	// The activity gets the input without the carried state.
	page := in
	page.Cursor, page.Progress = "", Progress{}
	for run := 0; !p.Done; run++ {
		if run >= pagesPerRun || (run > 0 && workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			next := in
			next.CampaignVersion = page.CampaignVersion
			next.Cursor, next.Progress = p.Cursor, p
			logger.Info("broadcast continues as new", "pages", p.Pages, "cursor", p.Cursor)
			return p, workflow.NewContinueAsNewError(ctx, WorkflowName, next)
		}
		var r PageResult
		err := workflow.ExecuteActivity(actx, ActivitySendPage, PageInput{Input: page, Cursor: p.Cursor}).Get(ctx, &r)
		if err != nil {
			publish(ctx, in, p)
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
		publish(ctx, in, p)
	}
	logger.Info("broadcast done", "sent", p.Sent, "duplicate", p.Duplicate, "suppressed", p.Suppressed,
		"failed", p.Failed, "deferred", p.Deferred, "pages", p.Pages)
	return p, nil
}

// publish shows the progress in the UI (current details).
func publish(ctx workflow.Context, in Input, p Progress) {
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
