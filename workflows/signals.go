package workflows

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/customer"
)

// What arrives from outside: signups and events (signals, and events sent
// as updates), decoded and validated by the journey itself, applied with
// its rules, and written to the CRM.

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
	j.reviewSends(ctx)
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
			j.s.note(j.now(ctx), "rejected", fmt.Sprintf("event %q: %v", shorten(e.ID, 64), verr))
			continue
		}
		valid = append(valid, e)
	}
	return valid
}

// apply runs rules on the journey's state and queues the CRM writes and
// the owners' notices they call for.
func (j *journey) apply(ctx workflow.Context, fn func(r *rules)) {
	seq, from := j.s.StageSeq, j.s.Stage
	r := &rules{s: j.s, c: j.c, now: j.now(ctx), v11: j.v11}
	fn(r)
	j.commit(ctx, r, seq, from)
}

// commit queues what rules decided and marks a stage change.
func (j *journey) commit(ctx workflow.Context, r *rules, seqBefore int, from customer.Stage) {
	j.queue(ctx, r.writes...)
	for _, n := range r.notices {
		j.sendInternal(ctx, n.Step, n.Template, n.To)
	}
	if j.s.StageSeq == seqBefore {
		return
	}
	// A stage boundary is where a journey moves to the newest campaign
	// version, by continuing as new. The signup's stage change skips that
	// when this run loaded the newest version moments ago.
	j.boundary = true
	if from == customer.StagePending && !j.loadedLatestAt.IsZero() && workflow.Now(ctx).Sub(j.loadedLatestAt) < freshCampaign {
		j.boundary = false
	}
}

func (j *journey) handleSignup(ctx workflow.Context, in Signup) {
	if err := in.Validate(); err != nil {
		j.s.note(j.now(ctx), "rejected", fmt.Sprintf("signup: %v", err))
		return
	}
	j.apply(ctx, func(r *rules) { r.signup(in) })
	j.loc = location(j.s, j.c)
}

// handleEvents records a batch in the CRM and applies the events the CRM
// had not seen, in the order they happened.
//
// The CRM's event log dedupes beyond the journey's own window of recent
// ids, so the journey asks it which events are new. To do that and write
// what the events change in one call, it applies the events to a copy of
// its state first, as if all were new, and sends the log write and the
// copy's writes as one batch that stops after the log write when they were
// not (StopUnlessAllNew); then it applies the new ones alone. While the CRM
// is away the journey goes on with its own window and the writes wait in
// the backlog.
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
	ignored := map[string]string{}
	for _, e := range fresh {
		at := e.At
		if at.IsZero() {
			at = workflow.Now(ctx)
		}
		r := activities.EventRecord{ID: e.ID, Type: e.Type, At: at, Properties: e.Properties}
		if !customer.IsKnownEvent(e.Type) && !j.c.IsActivity(e.Type) && j.c.Scoring.EventPointsFor(e.Type) == 0 &&
			!(j.v11 && j.c.Follows(e.Type)) {
			r.IgnoredReason = "unknown event type"
			ignored[e.ID] = r.IgnoredReason
		}
		records = append(records, r)
	}
	// The key makes a retried call (a local activity re-run after its
	// workflow task failed) get the same answer instead of "seen before".
	j.eventBatches++
	log := &activities.RecordEventsInput{CustomerID: j.s.CustomerID, Events: records,
		Key: fmt.Sprintf("%s/events/%d", workflow.GetInfo(ctx).WorkflowExecution.RunID, j.eventBatches)}
	// Apply in the order the events happened, whatever order they came in.
	sort.SliceStable(fresh, func(x, y int) bool { return fresh[x].At.Before(fresh[y].At) })

	seq, from := j.s.StageSeq, j.s.Stage
	trial := &rules{s: j.s.clone(), c: j.c, now: now, v11: j.v11}
	j.applyFresh(trial, fresh, ignored, nil)
	if len(j.s.CRM.Writes) > 0 {
		// A backlog waits: the log write joins it, in order.
		j.s = trial.s
		j.commit(ctx, &rules{writes: append([]activities.CRMWrite{{Events: log}}, trial.writes...), notices: trial.notices}, seq, from)
		return
	}
	log.StopUnlessAllNew = true
	batch := append([]activities.CRMWrite{{Events: log}}, trial.writes...)
	res, err := j.writeCRM(ctx, batch)
	if err != nil || !res.Stopped {
		// All new, or the CRM is away and the journey's own window decides.
		log.StopUnlessAllNew = false
		j.s = trial.s
		j.s.CRM.Writes = append(j.s.CRM.Writes, batch...)
		if err != nil {
			j.crmFailed(ctx, err)
		} else {
			j.crmWritten(ctx, batch, res)
		}
		j.commit(ctx, &rules{notices: trial.notices}, seq, from)
		return
	}
	// Some were in the CRM already (beyond the journey's window): the log
	// write is done; apply the new ones alone.
	isNew := map[string]bool{}
	for _, id := range res.New {
		isNew[id] = true
	}
	r := &rules{s: j.s, c: j.c, now: now, v11: j.v11}
	j.applyFresh(r, fresh, ignored, isNew)
	j.commit(ctx, r, seq, from)
}

// applyFresh applies events with the rules, noting the ones that are
// ignored, and — when isNew is given — those the CRM had already.
func (j *journey) applyFresh(r *rules, fresh []Event, ignored map[string]string, isNew map[string]bool) {
	var apply []Event
	for _, e := range fresh {
		switch {
		case isNew != nil && !isNew[e.ID]:
			r.s.note(r.now, "duplicate", fmt.Sprintf("event %s (%s) already in the CRM", e.ID, e.Type))
		case ignored[e.ID] != "":
			r.s.note(r.now, "ignored", fmt.Sprintf("event %s: %s %q", e.ID, ignored[e.ID], e.Type))
		default:
			apply = append(apply, e)
		}
	}
	if len(apply) > 0 {
		r.events(apply)
	}
}
