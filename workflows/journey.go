// Package workflows holds the customer journey: one durable Temporal
// workflow per customer that moves through the lifecycle stages of a
// campaign (trial → nurture → sales → onboarding → active → at_risk →
// churned, and the exits unsubscribed and erased).
//
// The journey is an event loop. Each turn it (1) takes every signal waiting
// (signups and CRM/product events) and applies them with the journey's
// rules (rules.go: state + event → new state + CRM writes), (2) hands its
// CRM writes to the CRM, or keeps them in its backlog while the database is
// away (crmqueue.go), (3) sends the email in turn, if any (sending.go),
// (4) asks the planner — a pure function of its state, campaign and clock
// (plan.go) — what to do next and when, publishes that in the UI
// (publish.go), and (5) sleeps until then or until the next signal,
// whichever is first. Because a signal always wakes the loop, an
// unsubscribe, bounce, purchase or erase takes effect at once: a pending
// send is never performed, and one in flight is cancelled.
package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// Release names the journey logic as released (CHANGELOG.md). Replay
// histories are recorded per release into testdata/histories/<Release>,
// and every set ever recorded must keep replaying: journeys of a release
// run for years. A change to what the workflow asks Temporal to do
// (activities, timers, their order) gets a workflow.GetVersion branch and a
// new Release (docs/journey.md, "Changing the workflow code safely").
const Release = "1.1"

// freshCampaign is how recently (real time) a run must have loaded the
// newest campaign version for the signup's stage change to skip the
// continue-as-new that would only load it again.
const freshCampaign = time.Minute

// defaultMaxHistoryEvents makes a run continue-as-new well before Temporal's
// own limits and keeps replays cheap.
const defaultMaxHistoryEvents = 1500

// Waiting for a campaign version no worker has: the first retry a second
// later, then twice as long each time, at most campaignRetryMax apart (a
// journey waiting for a day adds about 900 events to its history).
const (
	campaignRetryFirst = time.Second
	campaignRetryMax   = 5 * time.Minute
	// metricCampaignMissing counts the failed loads of a campaign version.
	metricCampaignMissing = "lifecycle_campaign_missing"
)

// a is used only to name activities; its methods run on the worker.
var a *activities.Activities

// journey is one run of a customer's journey workflow.
type journey struct {
	in       JourneyInput
	s        *JourneyState
	c        *campaign.Campaign
	loc      *time.Location
	seen     map[string]bool
	next     action
	boundary bool      // a stage changed: continue-as-new at the next safe point
	clock    time.Time // journey time of the last planning turn (for the query)
	done     *JourneyResult

	// loadedLatestAt is the workflow time this run loaded the newest
	// campaign version (zero if it ran on a pinned one).
	loadedLatestAt time.Time
	// waitingFor says what the journey waits for (a campaign version),
	// for the query.
	waitingFor string
	// timer is the wait timer of the planned step; crmTimer the retry
	// timer of the CRM backlog.
	timer, crmTimer *pendingTimer
	// eventBatches counts this run's event batches (their CRM keys).
	eventBatches int
	// v11: this run follows release 1.1 (reminders, advocacy and feedback,
	// one contact policy); a run recorded under 1.0 replays without.
	v11 bool

	// sends are the emails asked for and not yet started; inFlight the one
	// the journey waits for.
	sends    []sendRequest
	inFlight *sendInFlight

	signups workflow.ReceiveChannel
	events  workflow.ReceiveChannel

	// Events that arrived as updates wait here for the loop, which marks
	// them applied; wake nudges a waiting loop.
	updates []Event
	applied map[string]bool
	wake    workflow.Channel
}

// CustomerJourney is the workflow. See the package documentation.
func CustomerJourney(ctx workflow.Context, in JourneyInput) (JourneyResult, error) {
	j, err := start(ctx, in)
	if err != nil {
		return JourneyResult{}, err
	}
	for {
		if ctx.Err() != nil {
			// Cancelled by an operator (UI, CLI): stop cleanly.
			return JourneyResult{CustomerID: j.s.CustomerID, Stage: j.s.Stage, Reason: "cancelled"}, temporal.NewCanceledError()
		}
		j.collectSend(ctx)
		if j.takeSignals(ctx) {
			continue
		}
		j.flushCRM(ctx)
		// Everything this turn changed is applied: one upsert of the
		// search attributes, before the journey sends, ends, continues
		// or waits.
		j.writeAttributes(ctx)
		j.startNextSend(ctx)
		// The email in flight comes first; an ending journey hands its CRM
		// writes over before it ends (a continuing one carries them).
		if j.inFlight != nil || (j.done != nil && len(j.s.CRM.Writes) > 0) {
			j.publish(ctx)
			j.wait(ctx, false)
			continue
		}
		if j.done != nil || j.shouldContinueAsNew(ctx) {
			// Let update handlers return their answers first; they are
			// only waiting for events this loop has already applied.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return JourneyResult{}, err
			}
			if j.signups.Len() > 0 || j.events.Len() > 0 {
				continue // never end or continue with a signal unread
			}
		}
		if j.done != nil {
			return *j.done, nil
		}
		if j.shouldContinueAsNew(ctx) {
			j.s.Run++
			next := JourneyInput{
				CustomerID: j.s.CustomerID, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
				TimeScale: j.in.TimeScale, MaxHistoryEvents: j.in.MaxHistoryEvents,
				State: j.s, UpgradeCampaign: j.boundary,
			}
			return JourneyResult{}, workflow.NewContinueAsNewError(ctx, CustomerJourney, next)
		}
		now := j.now(ctx)
		j.clock = now
		j.next = planner{s: j.s, c: j.c, loc: j.loc, now: now, v11: j.v11}.next()
		j.publish(ctx)
		if j.next.Kind == actWait || j.next.At.After(now) {
			j.wait(ctx, true)
			continue
		}
		j.perform(ctx, j.next)
	}
}

func start(ctx workflow.Context, in JourneyInput) (*journey, error) {
	if err := ValidateCustomerID(in.CustomerID); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("bad journey input", "BadInput", err)
	}
	j := &journey{in: in, seen: map[string]bool{}}
	// Release 1.1 changes what the journey plans and writes. A run that
	// began under 1.0 replays without it; every run started since (a new
	// journey, or a continue-as-new of an old one) has it.
	j.v11 = workflow.GetVersion(ctx, "release-1.1", workflow.DefaultVersion, 1) == 1
	j.signups = workflow.GetSignalChannel(ctx, SignalSignup)
	j.events = workflow.GetSignalChannel(ctx, SignalEvent)
	if in.State != nil {
		j.s = in.State
	} else {
		scale := in.TimeScale
		if scale < 1 {
			scale = 1
		}
		now := workflow.Now(ctx)
		j.s = &JourneyState{
			CustomerID: in.CustomerID, CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion,
			Journey: journeyName(workflow.GetInfo(ctx).WorkflowExecution.RunID),
			Epoch:   now, TimeScale: scale, Stage: customer.StagePending, StageEnteredAt: now,
		}
	}
	for _, id := range j.s.SeenEvents {
		j.seen[id] = true
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (JourneyView, error) { return j.view(), nil }); err != nil {
		return nil, err
	}
	j.applied = map[string]bool{}
	j.wake = workflow.NewBufferedChannel(ctx, 1)
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateEvent, j.applyEventUpdate, workflow.UpdateHandlerOptions{
		Validator: func(_ workflow.Context, e Event) error { return e.Validate() },
	}); err != nil {
		return nil, err
	}
	if err := j.loadCampaign(ctx, in.UpgradeCampaign || j.s.CampaignVersion == ""); err != nil {
		return nil, err
	}
	return j, nil
}

// journeyName names a journey instance after its first run's id (8
// characters of it: unique enough among one customer's journeys, short in
// every key).
func journeyName(runID string) string {
	name := strings.ReplaceAll(runID, "-", "")
	if len(name) > 8 {
		name = name[:8]
	}
	return "j" + name
}

// applyEventUpdate hands an event to the loop like a signal would, waits
// until the loop applied it, and answers with the journey's view, so a
// caller that needs the outcome (the new score, the stage) gets it in one
// call. Invalid events are rejected by the validator before they enter the
// history.
func (j *journey) applyEventUpdate(ctx workflow.Context, e Event) (JourneyView, error) {
	j.updates = append(j.updates, e)
	j.wake.SendAsync(true)
	if err := workflow.Await(ctx, func() bool { return j.applied[e.ID] }); err != nil {
		return JourneyView{}, err
	}
	return j.view(), nil
}

// loadCampaign fetches the campaign definition through a local activity,
// so the definition a run used is recorded in its history and a replay
// never depends on the files a worker has now. A version no worker has
// (a rolling deploy, a file not shipped) makes the journey wait, visibly —
// current details, timeline, the query and a metric — and retry until it
// is deployed; it never fails the journey.
func (j *journey) loadCampaign(ctx workflow.Context, latest bool) error {
	req := activities.LoadCampaignInput{ID: j.s.CampaignID, Version: j.s.CampaignVersion, Latest: latest}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	for failures := 0; ; failures++ {
		var c campaign.Campaign
		err := workflow.ExecuteLocalActivity(lctx, a.LoadCampaign, req).Get(ctx, &c)
		if err == nil {
			if j.waitingFor != "" {
				j.s.note(j.now(ctx), "campaign", "campaign "+c.Key()+" is deployed: going on")
				j.waitingFor = ""
			}
			j.useCampaign(ctx, &c, latest)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("load campaign %q version %q: %w", req.ID, req.Version, ctx.Err())
		}
		wait := min(campaignRetryFirst<<min(failures, 10), campaignRetryMax)
		what := req.ID + "@" + orDefault(req.Version, "latest")
		if j.waitingFor == "" {
			j.s.note(j.now(ctx), "campaign", fmt.Sprintf("waiting for campaign %s: %v", what, err))
		}
		j.waitingFor = fmt.Sprintf("campaign %s, which no worker has (%s); retrying until it is deployed", what, shorten(err.Error(), 200))
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"campaign": req.ID}).Counter(metricCampaignMissing).Inc(1)
		workflow.GetLogger(ctx).Warn("campaign version missing; the journey waits", "campaign", what, "retry_in", wait, "error", err)
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**Waiting** for campaign %s: not deployed on any worker yet (%s)  \n**Retry** in %s  \n**Stage** %s",
			what, shorten(err.Error(), 200), wait, j.s.Stage))
		if err := workflow.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("load campaign %q version %q: %w", req.ID, req.Version, err)
		}
	}
}

// useCampaign makes c the campaign the run follows.
func (j *journey) useCampaign(ctx workflow.Context, c *campaign.Campaign, latest bool) {
	if c.Version != j.s.CampaignVersion && j.s.CampaignVersion != "" {
		j.s.note(j.now(ctx), "campaign", fmt.Sprintf("moved from version %s to %s at a stage boundary", j.s.CampaignVersion, c.Version))
	}
	j.c = c
	j.s.CampaignVersion = c.Version
	if latest {
		j.loadedLatestAt = workflow.Now(ctx)
	}
	j.loc = location(j.s, j.c)
}

// now is the journey clock: real workflow time, compressed by the time
// scale around the journey's epoch. With scale 1 it is workflow.Now.
func (j *journey) now(ctx workflow.Context) time.Time {
	return j.s.journeyTime(workflow.Now(ctx))
}

// pendingTimer is a timer a waiting journey sleeps on.
type pendingTimer struct {
	at     time.Time // the time it is for
	fired  workflow.Future
	cancel workflow.CancelFunc
}

// wait sleeps until a signal arrives, the email in flight is done, the CRM
// backlog is due for a retry or — when planned — the next step is due.
//
// Most wake-ups (an email opened, a login) leave the next due time where
// it was or move it later (decay, the inactivity window): the pending timer
// is kept then — one that fires early only makes the loop plan again —
// instead of cancelling it and starting another per signal (an action and
// two history events each). Only a due time earlier than the timer
// replaces it.
func (j *journey) wait(ctx workflow.Context, planned bool) {
	sel := workflow.NewSelector(ctx)
	if planned {
		next := j.next
		if j.timer != nil && next.Kind != actWait && next.At.Before(j.timer.at) {
			j.timer.cancel()
			j.timer = nil
		}
		if next.Kind != actWait && j.timer == nil {
			tctx, cancel := workflow.WithCancel(ctx)
			j.timer = &pendingTimer{at: next.At, fired: workflow.NewTimer(tctx, j.realDelay(ctx, next.At)), cancel: cancel}
		}
	}
	if j.timer != nil {
		sel.AddFuture(j.timer.fired, func(workflow.Future) { j.timer = nil })
	}
	if j.crmBackedUp() && len(j.s.CRM.Writes) > 0 {
		retryAt := j.s.CRM.RetryAt
		if j.crmTimer != nil && !j.crmTimer.at.Equal(retryAt) {
			j.crmTimer.cancel()
			j.crmTimer = nil
		}
		if j.crmTimer == nil {
			tctx, cancel := workflow.WithCancel(ctx)
			d := max(retryAt.Sub(workflow.Now(ctx)), time.Millisecond)
			j.crmTimer = &pendingTimer{at: retryAt, fired: workflow.NewTimer(tctx, d), cancel: cancel}
		}
		sel.AddFuture(j.crmTimer.fired, func(workflow.Future) { j.crmTimer = nil })
	}
	if j.inFlight != nil {
		sel.AddFuture(j.inFlight.done, func(workflow.Future) {})
	}
	sel.AddReceive(j.signups, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.events, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.wake, func(workflow.ReceiveChannel, bool) {})
	// A journey waiting for events alone must still stop when cancelled.
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
}

// shouldContinueAsNew: at a stage boundary (the safe point for campaign
// upgrades), or when the history grows long.
func (j *journey) shouldContinueAsNew(ctx workflow.Context) bool {
	if j.s.Stage == customer.StageUnsubscribed || j.s.Stage == customer.StageErased {
		return false
	}
	if j.boundary {
		return true
	}
	info := workflow.GetInfo(ctx)
	limit := j.in.MaxHistoryEvents
	if limit <= 0 {
		limit = defaultMaxHistoryEvents
	}
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= limit
}

// perform carries out a due step.
func (j *journey) perform(ctx workflow.Context, act action) {
	now := j.now(ctx)
	switch act.Kind {
	case actEntry:
		j.apply(ctx, func(r *rules) { r.enter() })
	case actSend:
		// The step is taken when its email is asked for: a send cancelled
		// or refused is not tried again by the planner.
		if act.advance != nil {
			act.advance(j.s, now)
		}
		if len(act.Deferral) > 0 && act.At.After(act.Due) {
			j.s.note(now, "deferred", fmt.Sprintf("%s: due %s, sent at %s: %s", act.label(),
				act.Due.In(j.loc).Format("Mon 2006-01-02 15:04"), act.At.In(j.loc).Format("Mon 15:04 MST"), strings.Join(act.Deferral, ", ")))
		}
		j.sendStep(ctx, act)
	case actSkip:
		j.s.note(now, "skipped", act.label())
		if act.advance != nil {
			act.advance(j.s, now)
		}
	case actTransition:
		j.apply(ctx, func(r *rules) { r.transition(act.To, act.Reason) })
	case actEscalate:
		j.apply(ctx, func(r *rules) { r.escalate() })
	case actDecay:
		j.apply(ctx, func(r *rules) { r.decay() })
	case actComplete:
		j.s.note(now, "end", act.Reason)
		j.done = &JourneyResult{CustomerID: j.s.CustomerID, Stage: j.s.Stage, Reason: act.Reason}
	}
}
