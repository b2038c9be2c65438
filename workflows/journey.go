// Package workflows holds the customer journey: one durable Temporal
// workflow per customer that moves through the lifecycle stages of a
// campaign (trial → nurture → sales → onboarding → active → at_risk →
// churned, and the exits unsubscribed and erased).
//
// The journey is an event loop. Each turn it (1) takes every signal waiting
// (signups and CRM/product events), (2) asks the planner — a pure function of
// its state, campaign and clock — what to do next and when, (3) publishes that
// in the UI (current details, search attributes), and (4) sleeps until then
// or until the next signal, whichever is first. Because a signal always wakes
// the loop, an unsubscribe, bounce, purchase or erase takes effect at once and
// a pending send is simply never performed.
package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
)

// Search attributes a journey keeps up to date (registered by the stack
// scripts; see docs).
var (
	AttrStage           = temporal.NewSearchAttributeKeyKeyword("JourneyStage")
	AttrScore           = temporal.NewSearchAttributeKeyInt64("LeadScore")
	AttrCustomerID      = temporal.NewSearchAttributeKeyKeyword("CustomerID")
	AttrCampaignVersion = temporal.NewSearchAttributeKeyKeyword("CampaignVersion")
)

// Revisions of the journey's logic. A change to what the workflow asks
// Temporal to do (its commands) must not change a run already recorded: a
// run keeps the revision it started with — the first run of a journey gets
// it from a version marker (workflow.GetVersion, one per journey), later runs
// from the state carried across continue-as-new, which always moves to the
// newest. Histories of older revisions replay unchanged (replay_test.go).
const (
	// logicOriginal: the campaign load and CRM writes as regular
	// activities, the signup's CRM work in three of them; every stage
	// change continues-as-new; the wait timer is started afresh on every
	// wake-up.
	logicOriginal = 0
	// logicLean: the campaign load and CRM writes as local activities (see
	// crm), the signup's CRM work in one (RegisterSignup); the signup's own
	// stage change does not continue-as-new when the run
	// loaded the newest campaign moments before; the wait timer is kept
	// across wake-ups that do not bring the next due time forward. Fewer
	// workflow tasks per signup and per event, fewer actions per year
	// (docs/benchmarks.md).
	logicLean = 1
	// logicBanded: the LeadScore search attribute moves in steps of 5
	// (the score rounded down to one) instead of with every
	// point, and a workflow task's search-attribute changes go out in one
	// upsert: an upsert is a visibility write on the server and an action
	// in Temporal Cloud, and most events move the score by 1–3 points.
	// The exact score stays in the current details and the state query.
	logicBanded = 2
	// logicBanded10: LeadScore moves in steps of 10 instead of 5. A lead's
	// score lives between 0 and the handoff threshold (60 in the built-in
	// campaign), so that is six values a lead passes through instead of
	// twelve; every step an upsert saved is a visibility write, which on
	// the dev server's SQLite costs about as much as the rest of an event's
	// workflow task (docs/benchmarks.md), and an action in Temporal Cloud.
	// Filters at the tens (`LeadScore >= 40`, the threshold) stay exact.
	logicBanded10 = 3
	logicLatest   = logicBanded10

	// LogicRevision is the revision new runs follow (tools record replay
	// histories per revision).
	LogicRevision = logicLatest

	logicChangeID = "journey-logic"
)

// freshCampaign is how recently (real time) a run must have loaded the
// newest campaign version for the signup's stage change to skip the
// continue-as-new that would only load it again.
const freshCampaign = time.Minute

// defaultMaxHistoryEvents makes a run continue-as-new well before Temporal's
// own limits and keeps replays cheap.
const defaultMaxHistoryEvents = 1500

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
	// timer is the pending wait timer (logicLean keeps it across wake-ups).
	timer *pendingTimer
	// eventBatches counts this run's RecordEvents calls (their keys).
	eventBatches int

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
		if j.takeSignals(ctx) {
			continue
		}
		// Everything this workflow task changed is applied: one upsert
		// (logicBanded), before the journey ends, continues, waits or
		// performs its next step.
		j.flushAttributes(ctx)
		if j.done != nil || j.shouldContinueAsNew(ctx) {
			// Let update handlers return their answers first; they are
			// only waiting for events this loop has already applied.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return JourneyResult{}, err
			}
		}
		if j.done != nil {
			return *j.done, nil
		}
		if j.shouldContinueAsNew(ctx) {
			j.s.Run++
			j.s.Logic = logicLatest // a new run has no recorded commands to stay compatible with
			next := JourneyInput{
				CustomerID: j.s.CustomerID, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
				TimeScale: j.in.TimeScale, MaxHistoryEvents: j.in.MaxHistoryEvents,
				State: j.s, UpgradeCampaign: j.boundary,
			}
			return JourneyResult{}, workflow.NewContinueAsNewError(ctx, CustomerJourney, next)
		}
		now := j.now(ctx)
		j.clock = now
		j.next = planner{s: j.s, c: j.c, loc: j.loc, now: now}.next()
		j.publish(ctx, now)
		if j.next.Kind == actWait || j.next.At.After(now) {
			j.wait(ctx, j.next)
			continue
		}
		if err := j.perform(ctx, j.next); err != nil {
			return JourneyResult{}, err
		}
	}
}

func start(ctx workflow.Context, in JourneyInput) (*journey, error) {
	if err := ValidateCustomerID(in.CustomerID); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("bad journey input", "BadInput", err)
	}
	j := &journey{in: in, seen: map[string]bool{}}
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
			Epoch: now, TimeScale: scale, Stage: campaign.StagePending, StageEnteredAt: now,
		}
		j.s.Logic = max(logicOriginal, int(workflow.GetVersion(ctx, logicChangeID, workflow.DefaultVersion, logicLatest)))
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
	j.upsertAttributes(ctx)
	return j, nil
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

// loadCampaign fetches the campaign definition through an activity, so the
// definition a run used is recorded in its history and a replay never
// depends on the files a worker has now. It retries until the definition is
// available (a worker deployed without a campaign file makes journeys wait,
// visibly, instead of failing them). From logicLean on it is a local
// activity (see crm).
func (j *journey) loadCampaign(ctx workflow.Context, latest bool) error {
	retry := &temporal.RetryPolicy{MaximumInterval: time.Minute}
	var c campaign.Campaign
	req := activities.LoadCampaignInput{ID: j.s.CampaignID, Version: j.s.CampaignVersion, Latest: latest}
	var loaded workflow.Future
	if j.s.Logic >= logicLean {
		loaded = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 10 * time.Second, RetryPolicy: retry,
		}), a.LoadCampaign, req)
	} else {
		loaded = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second, RetryPolicy: retry,
		}), a.LoadCampaign, req)
	}
	if err := loaded.Get(ctx, &c); err != nil {
		return fmt.Errorf("load campaign %q version %q: %w", j.s.CampaignID, j.s.CampaignVersion, err)
	}
	if c.Version != j.s.CampaignVersion && j.s.CampaignVersion != "" {
		j.s.note(j.now(ctx), "campaign", fmt.Sprintf("moved from version %s to %s at a stage boundary", j.s.CampaignVersion, c.Version))
	}
	j.c = &c
	j.s.CampaignVersion = c.Version
	if latest {
		j.loadedLatestAt = workflow.Now(ctx)
	}
	j.resolveLocation()
	return nil
}

func (j *journey) resolveLocation() {
	for _, name := range []string{j.s.Contact.TimeZone, j.c.DefaultTimeZone, "UTC"} {
		if name == "" {
			continue
		}
		if loc, err := campaign.LoadLocation(name); err == nil {
			j.loc = loc
			return
		}
	}
	j.loc = time.UTC
}

// now is the journey clock: real workflow time, compressed by the time
// scale around the journey's epoch. With scale 1 it is workflow.Now.
func (j *journey) now(ctx workflow.Context) time.Time {
	real := workflow.Now(ctx)
	if j.s.TimeScale <= 1 {
		return real
	}
	return j.s.Epoch.Add(time.Duration(float64(real.Sub(j.s.Epoch)) * j.s.TimeScale))
}

// journeyTime maps an outside (real) timestamp onto the journey clock.
func (j *journey) journeyTime(t time.Time) time.Time {
	if j.s.TimeScale <= 1 || t.IsZero() {
		return t
	}
	return j.s.Epoch.Add(time.Duration(float64(t.Sub(j.s.Epoch)) * j.s.TimeScale))
}

// wait sleeps until the action is due or a signal arrives.
func (j *journey) wait(ctx workflow.Context, next action) {
	if j.s.Logic >= logicLean {
		j.waitKeepingTimer(ctx, next)
		return
	}
	sel := workflow.NewSelector(ctx)
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	if next.Kind != actWait {
		d := next.At.Sub(j.now(ctx))
		if j.s.TimeScale > 1 {
			d = time.Duration(float64(d) / j.s.TimeScale)
		}
		d = max(d, time.Millisecond)
		sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) {})
	}
	sel.AddReceive(j.signups, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.events, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.wake, func(workflow.ReceiveChannel, bool) {})
	// A journey waiting for events alone must still stop when cancelled.
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
}

// pendingTimer is the timer a waiting journey sleeps on.
type pendingTimer struct {
	at     time.Time // the journey time it is for
	fired  workflow.Future
	cancel workflow.CancelFunc
}

// waitKeepingTimer is wait from logicLean on. Most wake-ups (an email
// opened, a login) leave the next due time where it was or move it later
// (decay, the inactivity window); the pending timer is kept then — one that
// fires early only makes the loop plan again — instead of cancelling it and
// starting another per signal (an action and two history events each;
// docs/benchmarks.md). Only a due time earlier than the timer replaces it.
func (j *journey) waitKeepingTimer(ctx workflow.Context, next action) {
	if j.timer != nil && next.Kind != actWait && next.At.Before(j.timer.at) {
		j.timer.cancel()
		j.timer = nil
	}
	if next.Kind != actWait && j.timer == nil {
		tctx, cancel := workflow.WithCancel(ctx)
		j.timer = &pendingTimer{at: next.At, fired: workflow.NewTimer(tctx, j.realDelay(ctx, next.At)), cancel: cancel}
	}
	sel := workflow.NewSelector(ctx)
	if j.timer != nil {
		sel.AddFuture(j.timer.fired, func(workflow.Future) { j.timer = nil })
	}
	sel.AddReceive(j.signups, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.events, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(j.wake, func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
}

// realDelay is the real time until a journey time, at least a millisecond.
func (j *journey) realDelay(ctx workflow.Context, at time.Time) time.Duration {
	d := at.Sub(j.now(ctx))
	if j.s.TimeScale > 1 {
		d = time.Duration(float64(d) / j.s.TimeScale)
	}
	return max(d, time.Millisecond)
}

// shouldContinueAsNew: at a stage boundary (the safe point for campaign
// upgrades), or when the history grows long.
func (j *journey) shouldContinueAsNew(ctx workflow.Context) bool {
	if j.s.Stage == campaign.StageUnsubscribed || j.s.Stage == campaign.StageErased {
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

// takeSignals handles every waiting signal; it reports whether there were
// any, so the loop plans again with the new state.
func (j *journey) takeSignals(ctx workflow.Context) bool {
	var signups []Signup
	for {
		var raw json.RawMessage
		if !j.signups.ReceiveAsync(&raw) {
			break
		}
		var s Signup
		if err := json.Unmarshal(raw, &s); err != nil {
			j.s.note(j.now(ctx), "rejected", fmt.Sprintf("malformed signup: %v", err))
			continue
		}
		signups = append(signups, s)
	}
	var events []Event
	for {
		var raw json.RawMessage
		if !j.events.ReceiveAsync(&raw) {
			break
		}
		events = append(events, j.decodeEvents(ctx, raw)...)
	}
	fromUpdates := j.updates
	j.updates = nil
	events = append(events, fromUpdates...)
	for j.wake.ReceiveAsync(nil) {
	}
	if len(signups) == 0 && len(events) == 0 {
		return false
	}
	for _, s := range signups {
		j.handleSignup(ctx, s)
	}
	if len(events) > 0 {
		j.handleEvents(ctx, events)
	}
	for _, e := range fromUpdates {
		j.applied[e.ID] = true
	}
	return true
}

// decodeEvents accepts one event or an array (callers coalesce several
// events for a customer into one signal). A malformed payload is noted in the
// timeline instead of being dropped silently.
func (j *journey) decodeEvents(ctx workflow.Context, raw json.RawMessage) []Event {
	trimmed := strings.TrimSpace(string(raw))
	var out []Event
	var err error
	if strings.HasPrefix(trimmed, "[") {
		err = json.Unmarshal(raw, &out)
	} else {
		var e Event
		err = json.Unmarshal(raw, &e)
		out = []Event{e}
	}
	if err != nil {
		j.s.note(j.now(ctx), "rejected", fmt.Sprintf("malformed event payload: %v", err))
		return nil
	}
	valid := out[:0]
	for _, e := range out {
		if verr := e.Validate(); verr != nil {
			j.s.note(j.now(ctx), "rejected", fmt.Sprintf("event %q: %v", e.ID, verr))
			continue
		}
		valid = append(valid, e)
	}
	return valid
}

// crmRetry: CRM writes retry until the database is back — a journey waits
// rather than losing a record. Bad input is non-retryable and surfaces at
// once.
func crmRetry() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
		NonRetryableErrorTypes: []string{activities.ErrBadInput},
	}
}

func (j *journey) mailCtx(ctx workflow.Context) workflow.Context {
	// Transient SMTP failures retry with backoff; permanent ones come back
	// as a "failed" result, not an error, so there is no retry storm.
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, // also bounds the send claim's lease
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			MaximumAttempts:        50,
			NonRetryableErrorTypes: []string{activities.ErrBadInput, activities.ErrTemplate},
		},
	})
}

// crm runs a CRM activity; a failure after retries is noted, never fatal:
// the journey goes on and the timeline says what is missing.
//
// From logicLean on, CRM writes (and the campaign load) are local
// activities: milliseconds of database work, idempotent by key, run by the
// worker inside the workflow task that asks for them, so they cost no
// activity task round trip through the server and no extra workflow task —
// a signal's events are recorded and applied in one workflow task. Emails
// stay regular activities (slow SMTP servers, their own send lease).
// Local activities get only a start-to-close timeout: the time-skipping
// test environment measures a schedule-to-close deadline against the wall
// clock.
func (j *journey) crm(ctx workflow.Context, what string, fn any, arg any, out any) bool {
	var done workflow.Future
	if j.s.Logic >= logicLean {
		done = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: crmRetry(),
		}), fn, arg)
	} else {
		done = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: crmRetry(),
		}), fn, arg)
	}
	if err := done.Get(ctx, out); err != nil {
		workflow.GetLogger(ctx).Error("CRM write failed", "what", what, "error", err)
		j.s.note(j.now(ctx), "error", fmt.Sprintf("%s: %v", what, err))
		return false
	}
	return true
}

func (j *journey) handleSignup(ctx workflow.Context, in Signup) {
	now := j.now(ctx)
	if err := in.Validate(); err != nil {
		j.s.note(now, "rejected", fmt.Sprintf("signup: %v", err))
		return
	}
	if in.CustomerID != j.s.CustomerID {
		j.s.note(now, "rejected", fmt.Sprintf("signup for %q sent to the journey of %q", in.CustomerID, j.s.CustomerID))
		return
	}
	if j.s.Stage == campaign.StageErased {
		return
	}
	first := !j.s.HasSignup
	j.s.HasSignup = true
	j.s.Contact = Contact{
		Email: in.Email, FirstName: in.FirstName, LastName: in.LastName, Company: in.Company, Role: in.Role,
		CompanySize: in.CompanySize, TimeZone: in.TimeZone, LeadSource: in.LeadSource, OwnerEmail: in.OwnerEmail,
	}
	j.resolveLocation()
	contact := activities.Contact{
		CustomerID: j.s.CustomerID, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
		Company: in.Company, Role: in.Role, CompanySize: in.CompanySize, TimeZone: j.loc.String(),
		LeadSource: in.LeadSource, OwnerEmail: in.OwnerEmail, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
	}
	if j.s.Logic >= logicLean {
		j.registerSignup(ctx, now, in, contact, first)
		return
	}
	j.crm(ctx, "upsert contact", a.UpsertContact, contact, nil)
	var fit activities.FitScore
	if j.crm(ctx, "score lead", a.ScoreLead, activities.ScoreLeadInput{
		CustomerID: j.s.CustomerID, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
	}, &fit) {
		j.s.Fit, j.s.FitReasons = fit.Points, fit.Reasons
	}
	if !first {
		j.s.note(now, "signup", "repeated signup: profile updated, journey unchanged")
		j.checkThreshold(ctx)
		return
	}
	j.s.note(now, "signup", fmt.Sprintf("signed up (source %s, fit %d)", orDefault(in.LeadSource, "cold"), j.s.Fit))
	if j.s.Stage != campaign.StagePending {
		return // unsubscribed before signing up: stays where it is
	}
	if j.s.PurchasedWhilePending {
		j.transition(ctx, campaign.StageOnboarding, "purchase arrived before the signup")
		return
	}
	j.transition(ctx, campaign.StageTrial, "trial signup")
	j.checkThreshold(ctx)
}

// registerSignup is the rest of handleSignup from logicLean on: the contact,
// its fit score and the stage change the signup makes are written by one
// activity.
func (j *journey) registerSignup(ctx workflow.Context, now time.Time, in Signup, contact activities.Contact, first bool) {
	var to campaign.Stage
	var reason string
	var change *activities.TransitionInput
	if first && j.s.Stage == campaign.StagePending {
		to, reason = campaign.StageTrial, "trial signup"
		if j.s.PurchasedWhilePending {
			to, reason = campaign.StageOnboarding, "purchase arrived before the signup"
		}
		rec := j.transitionRecord(to, reason, now)
		change = &rec
	}
	var fit activities.FitScore
	if j.crm(ctx, "register signup", a.RegisterSignup, activities.RegisterSignupInput{Contact: contact, Transition: change}, &fit) {
		j.s.Fit, j.s.FitReasons = fit.Points, fit.Reasons
	}
	if !first {
		j.s.note(now, "signup", "repeated signup: profile updated, journey unchanged")
		j.checkThreshold(ctx)
		return
	}
	j.s.note(now, "signup", fmt.Sprintf("signed up (source %s, fit %d)", orDefault(in.LeadSource, "cold"), j.s.Fit))
	if change == nil {
		return // unsubscribed before signing up: stays where it is
	}
	j.changeStage(ctx, to, reason, now, nil)
	if to == campaign.StageTrial {
		j.checkThreshold(ctx)
	}
}

// handleEvents records a batch in the CRM and applies the events the CRM
// had not seen, in the order they happened.
func (j *journey) handleEvents(ctx workflow.Context, events []Event) {
	now := j.now(ctx)
	var fresh []Event
	for _, e := range events {
		if j.s.seen(e.ID, j.seen) {
			j.s.note(now, "duplicate", fmt.Sprintf("event %s (%s) already handled", e.ID, e.Type))
			continue
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return
	}
	records := make([]activities.EventRecord, 0, len(fresh))
	for _, e := range fresh {
		at := e.At
		if at.IsZero() {
			at = workflow.Now(ctx)
		}
		r := activities.EventRecord{ID: e.ID, Type: e.Type, At: at, Properties: e.Properties}
		if !campaign.IsKnownEvent(e.Type) && !j.c.IsActivity(e.Type) && j.c.Scoring.EventPointsFor(e.Type) == 0 {
			r.IgnoredReason = "unknown event type"
		}
		records = append(records, r)
	}
	// The key makes a retried call (a local activity re-run after its
	// workflow task failed) get the same answer instead of "seen before".
	j.eventBatches++
	key := fmt.Sprintf("%s/events/%d", workflow.GetInfo(ctx).WorkflowExecution.RunID, j.eventBatches)
	var res activities.RecordEventsResult
	if !j.crm(ctx, "record events", a.RecordEvents, activities.RecordEventsInput{CustomerID: j.s.CustomerID, Events: records, Key: key}, &res) {
		// The CRM is the ledger beyond the in-memory window; without its
		// answer, apply what this run has not seen (in-memory dedupe).
		res.New = make([]string, len(records))
		for i, r := range records {
			res.New[i] = r.ID
		}
	}
	isNew := map[string]bool{}
	for _, id := range res.New {
		isNew[id] = true
	}
	ignored := map[string]string{}
	for _, r := range records {
		ignored[r.ID] = r.IgnoredReason
	}
	// Apply in the order the events happened, whatever order they came in.
	sort.SliceStable(fresh, func(x, y int) bool { return fresh[x].At.Before(fresh[y].At) })
	for _, e := range fresh {
		if !isNew[e.ID] {
			j.s.note(now, "duplicate", fmt.Sprintf("event %s (%s) already in the CRM", e.ID, e.Type))
			continue
		}
		if why := ignored[e.ID]; why != "" {
			j.s.note(now, "ignored", fmt.Sprintf("event %s: %s %q", e.ID, why, e.Type))
			continue
		}
		j.apply(ctx, e)
		if j.s.Stage == campaign.StageUnsubscribed || j.s.Stage == campaign.StageErased {
			return
		}
	}
	j.checkThreshold(ctx)
	j.upsertAttributes(ctx)
}

// apply is the effect of one new event on the journey.
func (j *journey) apply(ctx workflow.Context, e Event) {
	now := j.now(ctx)
	at := j.journeyTime(e.At)
	if at.IsZero() || at.After(now) {
		at = now
	}
	stage := j.s.Stage
	stale := at.Before(j.s.StageEnteredAt)
	switch e.Type {
	case "unsubscribe":
		j.suppress(ctx, "unsubscribed")
		j.transition(ctx, campaign.StageUnsubscribed, "customer unsubscribed")
		return
	case "erase":
		j.erase(ctx)
		return
	case "email_bounced", "email_complained":
		reason := map[string]string{"email_bounced": "bounced", "email_complained": "complained"}[e.Type]
		j.suppress(ctx, reason)
		j.s.MailSuppressed, j.s.SuppressedReason = true, reason
		j.s.note(now, "suppressed", "no more email: address "+reason)
		return
	case "sales_accepted":
		if stage == campaign.StageSales && !stale && !j.s.Accepted {
			j.s.Accepted = true
			j.setHandoff(ctx, "accepted")
			j.s.note(now, "sales", "handoff accepted by sales")
		} else {
			j.s.note(now, "ignored", fmt.Sprintf("sales_accepted %s: not in sales or older than the handoff", e.ID))
		}
		return
	case "deal_won", "purchase":
		switch stage {
		case campaign.StagePending:
			j.s.PurchasedWhilePending = true
			j.s.note(now, "event", e.Type+" before signup: onboarding starts with the signup")
			return
		case campaign.StageTrial, campaign.StageNurture, campaign.StageSales:
			if stage == campaign.StageSales {
				j.setHandoff(ctx, "won")
			}
			j.transition(ctx, campaign.StageOnboarding, e.Type)
			return
		}
	case "deal_lost", "sales_rejected":
		if stage != campaign.StageSales || stale {
			j.s.note(now, "ignored", fmt.Sprintf("%s %s: not in sales or older than the handoff", e.Type, e.ID))
			return
		}
		j.setHandoff(ctx, map[string]string{"deal_lost": "lost", "sales_rejected": "rejected"}[e.Type])
		// Back to nurture with behaviour points reset, so the lead is not
		// handed straight back; the fit score stays.
		j.s.Behaviour, j.s.Contributions = 0, nil
		j.transition(ctx, campaign.StageNurture, e.Type)
		return
	}

	// Engagement scoring while the lead is not yet a customer.
	if pts := j.c.Scoring.EventPointsFor(e.Type); pts != 0 && isLead(stage) {
		j.s.decay(j.c.Scoring.Decay, now)
		// An event that happened a while ago counts as decayed since then.
		pts = j.c.Scoring.Decayed(pts, at, now)
		j.s.Behaviour = max(0, j.s.Behaviour+pts)
		// Engagement restarts the decay clock.
		if at.After(j.s.LastEngagementAt) {
			j.s.LastEngagementAt = at
		}
		if j.s.Contributions == nil {
			j.s.Contributions = map[string]int{}
		}
		j.s.Contributions[e.Type] += pts
		j.s.note(now, "score", fmt.Sprintf("%s +%d → %d", e.Type, pts, j.s.score()))
	}
	// Activity for customers.
	if j.c.IsActivity(e.Type) {
		switch stage {
		case campaign.StageActive:
			if at.After(j.s.LastActivityAt) {
				j.s.LastActivityAt = at
			}
		case campaign.StageAtRisk, campaign.StageChurned:
			j.transition(ctx, campaign.StageActive, "reactivated: "+e.Type)
			return
		}
	}
	if !isLead(stage) && j.c.Scoring.EventPointsFor(e.Type) == 0 && !j.c.IsActivity(e.Type) {
		j.s.note(now, "event", fmt.Sprintf("%s recorded (no effect in %s)", e.Type, stage))
	}
}

func isLead(s campaign.Stage) bool {
	return s == campaign.StagePending || s == campaign.StageTrial || s == campaign.StageNurture
}

// checkThreshold hands a lead to sales once the score reaches the
// threshold.
func (j *journey) checkThreshold(ctx workflow.Context) {
	if j.s.Stage != campaign.StageTrial && j.s.Stage != campaign.StageNurture {
		return
	}
	if t := j.c.Scoring.Threshold; t > 0 && j.s.score() >= t {
		j.transition(ctx, campaign.StageSales, fmt.Sprintf("score %d reached threshold %d", j.s.score(), t))
	}
}

// transition moves the journey to another stage and records why.
func (j *journey) transition(ctx workflow.Context, to campaign.Stage, reason string) {
	now := j.now(ctx)
	rec := j.transitionRecord(to, reason, now)
	j.changeStage(ctx, to, reason, now, func() {
		// The CRM's erase records its own transition to erased.
		if to != campaign.StageErased {
			j.crm(ctx, "record transition", a.RecordTransition, rec, nil)
		}
	})
}

// transitionRecord is the CRM record of a stage change about to be made.
func (j *journey) transitionRecord(to campaign.Stage, reason string, now time.Time) activities.TransitionInput {
	return activities.TransitionInput{
		Key:        fmt.Sprintf("%s/transition/%d", j.s.CustomerID, j.s.StageSeq+1),
		CustomerID: j.s.CustomerID, From: j.s.Stage, To: to, Reason: reason, At: now,
		CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
	}
}

// changeStage changes the state to the new stage; record (nil when the
// change is recorded already) writes it to the CRM before the search
// attributes change.
func (j *journey) changeStage(ctx workflow.Context, to campaign.Stage, reason string, now time.Time, record func()) {
	from := j.s.Stage
	j.s.Stage = to
	j.s.StageSeq++
	j.s.StageEnteredAt = now
	j.s.EntryDone = false
	j.s.StepIndex = 0
	j.s.Accepted, j.s.Escalated = false, false
	if to == campaign.StageActive {
		j.s.LastActivityAt = now
	}
	if to == campaign.StageChurned {
		j.s.ChurnAttempts = 0
	}
	j.s.note(now, "stage", fmt.Sprintf("%s → %s: %s", from, to, reason))
	if record != nil {
		record()
	}
	j.upsertAttributes(ctx)
	// A stage boundary is where a journey moves to the newest campaign
	// version, by continuing as new. The signup's stage change skips that
	// when this run loaded the newest version moments ago.
	j.boundary = true
	if j.s.Logic >= logicLean && from == campaign.StagePending &&
		!j.loadedLatestAt.IsZero() && workflow.Now(ctx).Sub(j.loadedLatestAt) < freshCampaign {
		j.boundary = false
	}
}

// perform carries out a due action.
func (j *journey) perform(ctx workflow.Context, act action) error {
	now := j.now(ctx)
	switch act.Kind {
	case actEntry:
		j.enter(ctx)
		j.s.EntryDone = true
	case actSend:
		j.sendStep(ctx, act)
	case actSkip:
		j.s.note(now, "skipped", act.label())
		if act.advance != nil {
			act.advance(j.s, now)
		}
	case actTransition:
		j.transition(ctx, act.To, act.Reason)
	case actEscalate:
		j.s.Escalated = true
		j.setHandoff(ctx, "escalated")
		j.sendInternal(ctx, "sales-escalation", j.c.Sales.EscalationTemplate, j.c.Sales.EscalationEmail)
		j.s.note(now, "sales", fmt.Sprintf("handoff not accepted within %s: escalated", campaign.FormatDuration(j.c.Sales.SLA.D())))
	case actDecay:
		if j.s.decay(j.c.Scoring.Decay, now) {
			j.s.note(now, "score", fmt.Sprintf("decay → %d", j.s.score()))
			j.upsertAttributes(ctx)
		}
	case actComplete:
		j.s.note(now, "end", act.Reason)
		j.upsertAttributes(ctx)
		j.done = &JourneyResult{CustomerID: j.s.CustomerID, Stage: j.s.Stage, Reason: act.Reason}
	}
	return nil
}

// enter performs a stage's entry actions (once per stage entry).
func (j *journey) enter(ctx workflow.Context) {
	now := j.now(ctx)
	switch j.s.Stage {
	case campaign.StageSales:
		owner := orDefault(j.s.Contact.OwnerEmail, j.c.Sales.OwnerEmail)
		j.s.HandoffKey = fmt.Sprintf("%s/handoff/%d", j.s.CustomerID, j.s.StageSeq)
		reasons := j.s.topReasons(j.c.Sales.TopReasons)
		j.crm(ctx, "create handoff", a.CreateHandoff, activities.HandoffInput{
			Key: j.s.HandoffKey, CustomerID: j.s.CustomerID, Score: j.s.score(), Reasons: reasons,
			OwnerEmail: owner, SLADue: now.Add(j.c.Sales.SLA.D()),
		}, nil)
		j.sendInternal(ctx, "sales-handoff", j.c.Sales.NotifyTemplate, owner)
	case campaign.StageOnboarding:
		j.crm(ctx, "assign delivery owner", a.UpsertContact, j.contactRecord(), nil)
	case campaign.StageAtRisk:
		owner := orDefault(j.s.Contact.OwnerEmail, j.c.Sales.OwnerEmail)
		title := strings.NewReplacer("{customer}", j.displayName()).Replace(j.c.AtRisk.TaskTitle)
		j.crm(ctx, "create churn task", a.CreateTask, activities.TaskInput{
			Key:        fmt.Sprintf("%s/churn-warning/%d", j.s.CustomerID, j.s.StageSeq),
			CustomerID: j.s.CustomerID, OwnerEmail: owner, Kind: "churn_warning", Title: title,
			DueAt: now.Add(j.c.AtRisk.TaskDue.D()),
		}, nil)
		j.sendInternal(ctx, "churn-alert", j.c.AtRisk.AlertTemplate, owner)
	}
}

func (j *journey) contactRecord() activities.Contact {
	c := j.s.Contact
	rec := activities.Contact{
		CustomerID: j.s.CustomerID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		Company: c.Company, Role: c.Role, CompanySize: c.CompanySize, TimeZone: j.loc.String(),
		LeadSource: c.LeadSource, OwnerEmail: c.OwnerEmail, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
	}
	if j.s.Stage == campaign.StageOnboarding || j.s.Stage == campaign.StageActive {
		rec.DeliveryOwnerEmail = j.c.Onboarding.DeliveryOwnerEmail
	}
	return rec
}

func (j *journey) displayName() string {
	c := j.s.Contact
	name := strings.TrimSpace(c.FirstName + " " + c.LastName)
	if name == "" {
		name = j.s.CustomerID
	}
	if c.Company != "" {
		name += " (" + c.Company + ")"
	}
	return name
}

// sendStep sends a journey email to the customer.
func (j *journey) sendStep(ctx workflow.Context, act action) {
	now := j.now(ctx)
	defer func() {
		if act.advance != nil {
			act.advance(j.s, now)
		}
	}()
	switch {
	case j.s.Contact.Email == "":
		j.s.note(now, "skipped", act.label()+": no address")
		return
	case j.s.MailSuppressed:
		j.s.note(now, "skipped", act.label()+": address "+j.s.SuppressedReason)
		return
	}
	extra := map[string]string{campaign.ExtraReferralCode: referralCode(j.s.CustomerID)}
	res, ok := j.sendEmail(ctx, act.Key, act.StepID, act.Template, j.s.Contact.Email, j.displayName(), extra)
	if !ok {
		return
	}
	if res.Status == activities.SendSent || res.Status == activities.SendDuplicate {
		if act.Category == campaign.Marketing {
			max := 0
			if fc := j.c.Sending.FrequencyCap; fc != nil {
				max = fc.Max
			}
			j.s.recordSend(now, max)
		}
	}
	j.s.note(now, "email", fmt.Sprintf("%s: %s %s", act.label(), res.Status, res.Reason))
}

// sendInternal sends a transactional notice to an owner about the customer.
func (j *journey) sendInternal(ctx workflow.Context, step, template, to string) {
	if template == "" || to == "" {
		return
	}
	reasons := j.s.topReasons(j.c.Sales.TopReasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s (%d)", r.Source, r.Points)
	}
	extra := map[string]string{
		"CustomerID": j.s.CustomerID, "CustomerName": j.displayName(), "CustomerEmail": j.s.Contact.Email,
		"Reasons": strings.Join(parts, ", "), "Score": fmt.Sprint(j.s.score()),
	}
	key := sendKey(j.s, fmt.Sprintf("%s#%d/%s", j.s.Stage, j.s.StageSeq, step))
	if res, ok := j.sendEmail(ctx, key, step, template, to, "", extra); ok {
		j.s.note(j.now(ctx), "email", fmt.Sprintf("%s to %s: %s", step, to, res.Status))
	}
}

func (j *journey) sendEmail(ctx workflow.Context, key, step, template, to, toName string, extra map[string]string) (activities.SendEmailResult, bool) {
	c := j.s.Contact
	in := activities.SendEmailInput{
		Key: key, CustomerID: j.s.CustomerID, To: to, ToName: toName,
		CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion, Template: template, Step: step,
		Data: campaign.TemplateData{
			FirstName: c.FirstName, LastName: c.LastName, Email: c.Email, Company: c.Company,
			Stage: string(j.s.Stage), Score: j.s.score(), Extra: extra,
		},
	}
	var res activities.SendEmailResult
	if err := workflow.ExecuteActivity(j.mailCtx(ctx), a.SendEmail, in).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Error("send failed", "key", key, "error", err)
		j.s.note(j.now(ctx), "error", fmt.Sprintf("send %s: %v", step, err))
		return res, false
	}
	return res, true
}

func (j *journey) setHandoff(ctx workflow.Context, status string) {
	if j.s.HandoffKey == "" {
		return
	}
	j.crm(ctx, "handoff "+status, a.SetHandoffStatus, activities.HandoffStatusInput{Key: j.s.HandoffKey, Status: status}, nil)
}

func (j *journey) suppress(ctx workflow.Context, reason string) {
	if j.s.Contact.Email == "" {
		return
	}
	j.crm(ctx, "suppress "+reason, a.Suppress, activities.SuppressInput{
		CustomerID: j.s.CustomerID, Email: j.s.Contact.Email, Reason: reason,
	}, nil)
}

// erase deletes the customer's personal data in the CRM and ends the
// journey; the journey's own state forgets the contact too.
func (j *journey) erase(ctx workflow.Context) {
	j.crm(ctx, "erase", a.EraseContact, activities.EraseInput{CustomerID: j.s.CustomerID}, nil)
	j.s.Contact = Contact{}
	for i := range j.s.Timeline {
		j.s.Timeline[i].Detail = redact(j.s.Timeline[i])
	}
	j.transition(ctx, campaign.StageErased, "personal data erased on request")
}

func redact(e TimelineEntry) string {
	if e.Kind == "stage" {
		return e.Detail
	}
	return "(erased)"
}

// publish keeps the UI's view current: current details (stage, score, next
// step and when) and, when they changed, the search attributes.
func (j *journey) publish(ctx workflow.Context, now time.Time) {
	next := j.next.label()
	when := ""
	if j.next.Kind != actWait {
		when = " at " + j.next.At.In(j.loc).Format("2006-01-02 15:04 MST")
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf(
		"**Stage** %s since %s  \n**Score** %d (fit %d + behaviour %d, threshold %d)  \n**Next** %s%s  \n**Campaign** %s@%s",
		j.s.Stage, j.s.StageEnteredAt.In(j.loc).Format("2006-01-02"), j.s.score(), j.s.Fit, j.s.Behaviour,
		j.c.Scoring.Threshold, next, when, j.s.CampaignID, j.s.CampaignVersion))
}

// ScoreStep is the step of the LeadScore search attribute (logicBanded10;
// journeys of logicBanded keep their step of 5). Ten points: a pricing view
// (10 in the built-in campaign) moves it at once, opens (1) and clicks (3)
// only every few times, and the threshold (60) is a step.
const ScoreStep = 10

// bandedScoreStep is logicBanded's step.
const bandedScoreStep = 5

// VisibleScore is the LeadScore search attribute's value for a score: the
// score rounded down to a multiple of ScoreStep (a score of 43 shows as 40,
// so `LeadScore >= 40` finds it; filter on multiples of ScoreStep).
func VisibleScore(score int) int64 {
	return roundDown(score, ScoreStep)
}

// visibleScore is VisibleScore under a journey's logic revision.
func visibleScore(logic, score int) int64 {
	switch {
	case logic < logicBanded:
		return int64(score)
	case logic == logicBanded:
		return roundDown(score, bandedScoreStep)
	default:
		return VisibleScore(score)
	}
}

// roundDown rounds toward minus infinity, also for a negative score.
func roundDown(score, step int) int64 {
	return int64(score - ((score%step)+step)%step)
}

// upsertAttributes writes the search attributes that changed, in one
// upsert, where the journey changed them — up to logicLean. From
// logicBanded on the loop gathers a workflow task's changes into one upsert
// (flushAttributes): every upsert is a history event and a visibility
// write, and a signup changed them three times in its first task. A CRM
// write (a local activity) does not flush: while the CRM is down, the
// attributes follow once the write is through.
func (j *journey) upsertAttributes(ctx workflow.Context) {
	if j.s.Logic < logicBanded {
		j.writeAttributes(ctx)
	}
}

// flushAttributes is upsertAttributes' one call per loop turn from
// logicBanded on. It runs before perform, so a stage change is visible
// before the stage's entry emails go out (an email may take long: SMTP
// retries).
func (j *journey) flushAttributes(ctx workflow.Context) {
	if j.s.Logic >= logicBanded {
		j.writeAttributes(ctx)
	}
}

func (j *journey) writeAttributes(ctx workflow.Context) {
	current := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	if v, ok := current.GetKeyword(AttrStage); !ok || v != string(j.s.Stage) {
		updates = append(updates, AttrStage.ValueSet(string(j.s.Stage)))
	}
	score := visibleScore(j.s.Logic, j.s.score())
	if v, ok := current.GetInt64(AttrScore); !ok || v != score {
		updates = append(updates, AttrScore.ValueSet(score))
	}
	if v, ok := current.GetKeyword(AttrCustomerID); !ok || v != j.s.CustomerID {
		updates = append(updates, AttrCustomerID.ValueSet(j.s.CustomerID))
	}
	if v, ok := current.GetKeyword(AttrCampaignVersion); !ok || v != j.s.CampaignID+"@"+j.s.CampaignVersion {
		updates = append(updates, AttrCampaignVersion.ValueSet(j.s.CampaignID+"@"+j.s.CampaignVersion))
	}
	if len(updates) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

func (j *journey) view() JourneyView {
	v := JourneyView{
		CustomerID: j.s.CustomerID, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
		Stage: j.s.Stage, StageEnteredAt: j.s.StageEnteredAt, Score: j.s.score(), FitScore: j.s.Fit,
		BehaviourScore: j.s.Behaviour, MailSuppressed: j.s.MailSuppressed, Run: j.s.Run,
		Timeline: append([]TimelineEntry(nil), j.s.Timeline...),
	}
	if j.c != nil {
		v.Threshold = j.c.Scoring.Threshold
		for _, r := range j.s.topReasons(5) {
			v.TopReasons = append(v.TopReasons, ScoreReason{Source: r.Source, Points: r.Points})
		}
	}
	if j.next.Kind != "" {
		v.NextStep = j.next.label()
		if j.next.Kind != actWait {
			v.NextAt = j.next.At
		}
	}
	v.JourneyNow = j.clock
	return v
}

// referralCode is the customer's code for referral asks: stable, derived
// from the customer id, so it needs no storage.
func referralCode(customerID string) string {
	sum := sha256.Sum256([]byte(customerID))
	return "REF-" + strings.ToUpper(hex.EncodeToString(sum[:4]))
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
