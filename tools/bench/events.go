package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/workflows"
)

// The events' limits: raw signal-with-start calls answered per second, and
// signals handled by their (do-nothing) workflows per second — the events
// figures count until applied, so they are compared with the second.
const (
	limitSWS          = "signal-with-start"
	limitSWSProcessed = "signal-with-start-processed"
	// limitSWSPaired is the processed limit measured right before the
	// open-loop round it is compared with.
	limitSWSPaired = "signal-with-start-processed-paired"
	// limitSWSPairedCoalesced is the processed limit measured right before
	// the coalesced run.
	limitSWSPairedCoalesced = "signal-with-start-processed-paired-coalesced"
)

// vsLimitsPhase compares an events rate with the limits phase's raw
// processed rate (measured minutes earlier; the figures are divided by
// paired limits, this is for reference).
func (h *Harness) vsLimitsPhase(rate float64) string {
	l := h.results.Limits[limitSWSProcessed]
	if l == 0 {
		return ""
	}
	return fmt.Sprintf("; %.2f× the limits phase's (%.0f/s)", rate/l, l)
}

// eventCustomers returns n customers with running journeys: the signup
// phase's, or fresh ones started here.
func (h *Harness) eventCustomers(ctx context.Context, ms *mainStack, n int) ([]string, error) {
	prefix := h.signupPrefix
	have := h.cfg.Signups
	if prefix == "" {
		prefix, have = "ev-"+h.id+"-", 0
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	if n > have {
		tz := daytimeZone(time.Now())
		_, err := parallel(n-have, 16, func(i int) error {
			i += have
			_, err := ms.api.Signup(ctx, workflows.Signup{CustomerID: ids[i], Email: fmt.Sprintf("e%06d@ev-%s.example", i, h.id),
				CompanySize: 10, TimeZone: tz, LeadSource: "cold"})
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// behaviour polls the journey's state query until its behaviour score is
// at least want.
func (h *Harness) waitBehaviour(ctx context.Context, id string, want int, every time.Duration) (int, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := workflows.State(qctx, h.c, id)
		cancel()
		h.queries.Add(1)
		if err == nil && v.BehaviourScore >= want {
			return v.BehaviourScore, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return 0, err
			}
			return v.BehaviourScore, fmt.Errorf("%s: behaviour score %d, want %d after 2 minutes", id, v.BehaviourScore, want)
		}
		time.Sleep(every)
	}
}

// events measures CRM events through POST /v1/events into running journeys:
//
//   - one event per request, a fixed number of callers each waiting until
//     the journey's state query shows the new score (closed loop; the
//     latency is API call → score visible);
//   - batches that coalesce several events per customer into one request
//     (one signal-with-start per customer), until every score is visible.
func (h *Harness) events(ctx context.Context) error {
	ms, err := h.main(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if e, conc := h.cfg.Events, h.cfg.EventConc; e > 0 {
		customers := min(e, max(conc*4, 64))
		ids, err := h.eventCustomers(ctx, ms, customers)
		if err != nil {
			return err
		}
		base := make([]int, len(ids))
		for i, id := range ids {
			if base[i], err = h.waitBehaviour(ctx, id, 0, 50*time.Millisecond); err != nil {
				return err
			}
		}
		var mu sync.Mutex
		var lat []time.Duration
		m := begin()
		_, err = parallel(e, conc, func(k int) error {
			// Caller k%conc owns customers k%conc, +conc, ...: one event in
			// flight per customer.
			c := k % conc
			own := (len(ids) - c + conc - 1) / conc
			i := c + conc*((k/conc)%own)
			mu.Lock()
			base[i]++
			want := base[i]
			mu.Unlock()
			t0 := time.Now()
			if _, err := ms.api.Event(ctx, api.Event{CustomerID: ids[i], ID: fmt.Sprintf("ev-%s-%d", h.id, k), Type: "email_opened"}); err != nil {
				return err
			}
			if _, err := h.waitBehaviour(ctx, ids[i], want, 5*time.Millisecond); err != nil {
				return err
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("single events: %w", err))
		} else {
			f := m.end(&Figure{Phase: "events", Name: "events, one per API call, until the score is visible in `state` (closed loop)",
				Unit: "events/s", N: e, Limit: limitSWSProcessed,
				Note:  fmt.Sprintf("%d callers, %d journeys, email_opened (+1), state polled every 5 ms", conc, len(ids)),
				Repro: fmt.Sprintf("lifecycle-bench -phases signups,events -events %d -event-conc %d", e, conc)})
			f.Value = float64(e) / f.Elapsed.Seconds()
			latencies(f, lat)
			h.results.add(f)
		}
	}
	if c, per := h.cfg.EventBatchCustomers, h.cfg.EventsPerCustomer; c > 0 && per > 0 {
		if err := h.openLoopEvents(ctx, ms, c, per); err != nil {
			errs = append(errs, fmt.Errorf("open-loop events: %w", err))
		}
		if err := h.coalescedEvents(ctx, ms, c, per); err != nil {
			errs = append(errs, fmt.Errorf("coalesced events: %w", err))
		}
	}
	return errors.Join(errs...)
}

// openLoopEvents sends `per` events to each of `customers` journeys, one
// event per API call, 16 calls in flight like the raw signal-with-start
// limit, in round-robin order, and waits until every one is applied: the
// figure that compares with that limit (the closed-loop figure measures
// latency, its rate is callers / latency).
//
// The shared machine's speed drifts between phases (the limit alone moved
// 260–588/s in one evening), so each round measures the raw limit in the
// same shape right before the journeys' run, and the figure is the round
// with the median ratio; the note lists every round.
func (h *Harness) openLoopEvents(ctx context.Context, ms *mainStack, customers, per int) error {
	ids, err := h.eventCustomers(ctx, ms, customers)
	if err != nil {
		return err
	}
	rounds := max(1, h.cfg.EventRounds)
	type round struct {
		limit float64 // the paired raw processed rate
		f     *Figure
	}
	var done []round
	// Calls answered against calls answered: the API's accept rate as a
	// fraction of the paired raw accept rate, per round.
	var answered []float64
	for r := range rounds {
		raw, err := h.rawSignalWithStart(ctx, len(ids)*per, len(ids), "")
		if err != nil {
			return fmt.Errorf("round %d: paired limit: %w", r+1, err)
		}
		f, accepted, err := h.openLoopRound(ctx, ms, ids, per, r)
		if err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
		done = append(done, round{raw.processed, f})
		answered = append(answered, accepted/raw.accepted)
	}
	slices.Sort(answered)
	slices.SortFunc(done, func(a, b round) int { return cmp.Compare(a.f.Value/a.limit, b.f.Value/b.limit) })
	mid := done[len(done)/2]
	var each []string
	for _, d := range done {
		each = append(each, fmt.Sprintf("%.2f× (%.0f/%.0f)", d.f.Value/d.limit, d.f.Value, d.limit))
	}
	h.results.limit(limitSWSPaired, mid.limit)
	mid.f.Limit = limitSWSPaired
	mid.f.Note += fmt.Sprintf("; the median of %d rounds, each right after its own raw signal-with-start processed limit (same shape): %s, sorted; calls answered by the API against raw signal-with-start calls answered in the same rounds: median **%.2f×** (%.2f–%.2f×)",
		len(done), strings.Join(each, ", "), answered[len(answered)/2], answered[0], answered[len(answered)-1])
	mid.f.Note += h.vsLimitsPhase(mid.f.Value)
	h.results.add(mid.f)
	return nil
}

// openLoopRound is one round of openLoopEvents: the figure, not yet added.
// It also returns the rate at which the API answered the calls.
func (h *Harness) openLoopRound(ctx context.Context, ms *mainStack, ids []string, per, r int) (*Figure, float64, error) {
	base := make([]int, len(ids))
	var err error
	for i, id := range ids {
		if base[i], err = h.waitBehaviour(ctx, id, 0, 50*time.Millisecond); err != nil {
			return nil, 0, err
		}
	}
	n := len(ids) * per
	prefix := fmt.Sprintf("ol-%s-%d-", h.id, r)
	last := make([]time.Time, len(ids))
	var mu sync.Mutex
	recorded0, err := ms.eventsRecorded()
	if err != nil {
		return nil, 0, err
	}
	prof := filepath.Join(h.cfg.ProfileDir, "events-open-loop.cpu.pprof")
	stopProfile, err := startProfile(prof)
	if err != nil {
		return nil, 0, err
	}
	defer stopProfile()
	m := begin()
	_, err = parallel(n, 16, func(k int) error {
		i := k % len(ids)
		if _, err := ms.api.Event(ctx, api.Event{CustomerID: ids[i], ID: prefix + strconv.Itoa(k), Type: "email_opened"}); err != nil {
			return err
		}
		mu.Lock()
		last[i] = time.Now()
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	accepted := time.Since(m.t0)
	if err := ms.waitApplied(recorded0, n); err != nil {
		return nil, 0, err
	}
	stopProfile()
	f := m.end(&Figure{Phase: "events", Name: "events, one per API call, 16 in flight, until every one is applied (open loop)",
		Unit: "events/s", N: n, Limit: limitSWSProcessed,
		Repro: fmt.Sprintf("lifecycle-bench -phases events -event-batch-customers %d -events-per-customer %d -event-rounds %d", len(ids), per, h.cfg.EventRounds)})
	f.Value = float64(n) / f.Elapsed.Seconds()
	want := make([]int, len(ids))
	for i := range ids {
		want[i] = base[i] + per
	}
	lat, queries, err := h.waitAllVisible(ctx, ids, want, func(i int) time.Time { return last[i] })
	if err != nil {
		return nil, 0, err
	}
	f.Note = fmt.Sprintf("%d journeys × %d email_opened, round robin; API accepted all in %s (%.0f events/s); applied = every event recorded as new in the CRM event log by the journey, in the workflow task that applies it (the worker's counter, read in-process); then every score checked with the state query; latency = the journey's last event sent → score seen (%d queries in rounds, so an upper bound); CPU profile of the harness (last round) %s",
		len(ids), per, accepted.Round(time.Millisecond), float64(n)/accepted.Seconds(), queries, prof)
	latencies(f, lat)
	return f, float64(n) / accepted.Seconds(), nil
}

// eventsRecorded is the worker's count of events its journeys wrote to the
// CRM event log as new (lifecycle_crm_events_total{outcome="new"}): a
// journey records an event in the workflow task that applies it (a local
// activity), so the count moves when an event is processed by its journey.
// Read in-process, like the raw limit's sink counts its signals, so the
// measurement loads neither the Temporal server nor PostgreSQL (polling
// the event log with count(*) every 10 ms cost PostgreSQL about 10 % of a
// core during the runs it measured).
func (ms *mainStack) eventsRecorded() (float64, error) {
	families, err := ms.metrics.Gather()
	if err != nil {
		return 0, fmt.Errorf("read the worker's metrics: %w", err)
	}
	for _, mf := range families {
		if mf.GetName() != "lifecycle_crm_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "new" {
					return m.GetCounter().GetValue(), nil
				}
			}
		}
	}
	return 0, nil
}

// waitApplied waits until the journeys recorded n more new events than
// from (an eventsRecorded reading taken before they were sent).
func (ms *mainStack) waitApplied(from float64, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, err := ms.eventsRecorded()
		if err != nil {
			return err
		}
		if got-from >= float64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%.0f of %d events recorded in the CRM after 3 minutes", got-from, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *Harness) coalescedEvents(ctx context.Context, ms *mainStack, customers, per int) error {
	ids, err := h.eventCustomers(ctx, ms, customers)
	if err != nil {
		return err
	}
	// Paired like the open-loop rounds: the same number of events as raw
	// signals, one signal each, right before.
	raw, err := h.rawSignalWithStart(ctx, len(ids)*per, len(ids), "")
	if err != nil {
		return fmt.Errorf("paired limit: %w", err)
	}
	h.results.limit(limitSWSPairedCoalesced, raw.processed)
	base := make([]int, len(ids))
	for i, id := range ids {
		if base[i], err = h.waitBehaviour(ctx, id, 0, 50*time.Millisecond); err != nil {
			return err
		}
	}
	// Batches of up to 1,000 events: whole customers, `per` events each.
	perBatch := max(1, 1000/per)
	type batch struct{ from, to int }
	var batches []batch
	for i := 0; i < len(ids); i += perBatch {
		batches = append(batches, batch{i, min(i+perBatch, len(ids))})
	}
	sent := make([]time.Time, len(ids))
	recorded0, err := ms.eventsRecorded()
	if err != nil {
		return err
	}
	m := begin()
	_, err = parallel(len(batches), 4, func(b int) error {
		var evs []api.Event
		for i := batches[b].from; i < batches[b].to; i++ {
			for k := range per {
				evs = append(evs, api.Event{CustomerID: ids[i], ID: fmt.Sprintf("cb-%s-%d-%d", h.id, i, k), Type: "email_opened"})
			}
		}
		t0 := time.Now()
		for i := batches[b].from; i < batches[b].to; i++ {
			sent[i] = t0
		}
		res, err := ms.api.Events(ctx, evs...)
		if err != nil {
			return err
		}
		if res.Accepted != len(evs) {
			return fmt.Errorf("batch %d: %d of %d accepted", b, res.Accepted, len(evs))
		}
		return nil
	})
	if err != nil {
		return err
	}
	accepted := time.Since(m.t0)
	n := len(ids) * per
	if err := ms.waitApplied(recorded0, n); err != nil {
		return err
	}
	f := m.end(&Figure{Phase: "events", Name: fmt.Sprintf("events in API batches, %d per customer coalesced into one signal, until every one is applied", per),
		Unit: "events/s", N: n, Limit: limitSWSPairedCoalesced,
		Repro: fmt.Sprintf("lifecycle-bench -phases signups,events -event-batch-customers %d -events-per-customer %d", customers, per)})
	f.Value = float64(n) / f.Elapsed.Seconds()
	want := make([]int, len(ids))
	for i := range ids {
		want[i] = base[i] + per
	}
	lat, queries, err := h.waitAllVisible(ctx, ids, want, func(i int) time.Time { return sent[i] })
	if err != nil {
		return err
	}
	f.Note = fmt.Sprintf("%d journeys, batches of %d events, 4 batches in flight; API accepted all in %s (%.0f events/s); applied = every event recorded as new in the CRM event log (the worker's counter, read in-process), then every score checked with the state query; latency = batch sent → score seen (%d queries in rounds, so an upper bound)",
		len(ids), perBatch*per, accepted.Round(time.Millisecond), float64(n)/accepted.Seconds(), queries)
	f.Note += fmt.Sprintf("; against a raw signal-with-start processed limit (the same %d signals, one event each) measured right before", n)
	f.Note += h.vsLimitsPhase(f.Value)
	f.Note += fmt.Sprintf("; the API answered %.2f× the paired raw calls answered (%.0f/s)", float64(n)/accepted.Seconds()/raw.accepted, raw.accepted)
	latencies(f, lat)
	h.results.add(f)
	return nil
}

// visiblePoll is the pause between the rounds of waitAllVisible.
const visiblePoll = 20 * time.Millisecond

// waitAllVisible waits until every journey's behaviour score reached want,
// querying in rounds (each journey not yet there once per round, 16 queries
// in flight, a pause between rounds): queries go through the same server
// and worker as the events, so polling each journey in a tight loop would
// slow down what it measures. It returns the latencies from sent(i) and the
// number of queries.
func (h *Harness) waitAllVisible(ctx context.Context, ids []string, want []int, sent func(i int) time.Time) ([]time.Duration, int, error) {
	deadline := time.Now().Add(3 * time.Minute)
	pending := make([]int, len(ids))
	for i := range ids {
		pending[i] = i
	}
	var mu sync.Mutex
	var lat []time.Duration
	queries := 0
	for len(pending) > 0 {
		done := make([]bool, len(pending))
		_, err := parallel(len(pending), 16, func(k int) error {
			i := pending[k]
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			v, err := workflows.State(qctx, h.c, ids[i])
			cancel()
			h.queries.Add(1)
			if err != nil {
				return nil // counted as not visible yet
			}
			if v.BehaviourScore >= want[i] {
				mu.Lock()
				lat = append(lat, time.Since(sent(i)))
				done[k] = true
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return nil, queries, err
		}
		queries += len(pending)
		next := pending[:0]
		for k, i := range pending {
			if !done[k] {
				next = append(next, i)
			}
		}
		pending = next
		if len(pending) > 0 {
			if time.Now().After(deadline) {
				return nil, queries, fmt.Errorf("%d journeys still below their score after 3 minutes (first: %s)", len(pending), ids[pending[0]])
			}
			time.Sleep(visiblePoll)
		}
	}
	return lat, queries, nil
}

// sinkHandled counts the signals BenchSignalSink workflows have handled in
// this process's workers: how the raw limit sees "processed" without
// loading the server it measures with queries.
var sinkHandled atomic.Int64

// SignalSink (workflow type BenchSignalSink) waits on a signal channel
// forever and drops what it receives: the target of the raw
// signal-with-start limit.
// With work set it also does, once per workflow task that received
// signals, what a journey's event task does on top of receiving — the
// decomposition figures of the limits phase: "upsert" upserts the
// LeadScore search attribute (a visibility write), "la" runs a local
// activity (a marker event), "la+upsert" both.
func SignalSink(ctx workflow.Context, work string) error {
	ch := workflow.GetSignalChannel(ctx, "event")
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	total := int64(0)
	for {
		var v any
		ch.Receive(ctx, &v)
		got := int64(1)
		for ch.ReceiveAsync(&v) {
			got++
		}
		total += got
		if work == "la" || work == "la+upsert" {
			if err := workflow.ExecuteLocalActivity(ctx, benchNoopActivity).Get(ctx, nil); err != nil {
				return err
			}
		}
		if work == "upsert" || work == "la+upsert" {
			if err := workflow.UpsertTypedSearchAttributes(ctx, workflows.AttrScore.ValueSet(total)); err != nil {
				return err
			}
		}
		// A side effect outside the workflow on purpose (a benchmark
		// probe, like the journey's CRM event log write): counted once,
		// not again when a history is replayed.
		if !workflow.IsReplaying(ctx) {
			sinkHandled.Add(got)
		}
	}
}

func benchNoopActivity(context.Context) error { return nil }

// swsRun is one raw signal-with-start measurement: rates, and the
// measurement begun once the workflows were started and waiting, with its
// CPU and wall time up to the last signal handled.
type swsRun struct {
	accepted, processed float64
	m                   measure
	cpu                 string
	elapsed             time.Duration
}

// rawSignalWithStart is the limit for events: signal-with-start calls into
// journeys-to-be that do nothing but receive (n signals over `workflows`
// workflows, 16 in flight like the API's per-batch fan-out); work adds a
// journey's per-task work (see BenchSignalSink), or, as "signal", sends
// plain signals once the workflows run (what the API sends a running
// journey).
func (h *Harness) rawSignalWithStart(ctx context.Context, n, workflowsN int, work string) (r swsRun, err error) {
	tq := "bench-sws-" + h.id + "-" + work
	w := worker.New(h.c, tq, h.workerOptions())
	w.RegisterWorkflowWithOptions(SignalSink, workflow.RegisterOptions{Name: "BenchSignalSink"})
	if err := w.Start(); err != nil {
		return r, err
	}
	defer w.Stop()
	id := func(i int) string { return fmt.Sprintf("bench-sws/%s/%s/%d", h.id, work, i%workflowsN) }
	defer func() {
		for i := range workflowsN {
			_ = h.c.TerminateWorkflow(context.Background(), id(i), "", "benchmark done")
		}
	}()
	payload := map[string]any{"id": "x", "type": "email_opened"}
	start := func(i int) error {
		_, err := h.c.SignalWithStartWorkflow(ctx, id(i), "event", payload,
			client.StartWorkflowOptions{ID: id(i), TaskQueue: tq}, "BenchSignalSink", work)
		return err
	}
	send := start
	if work == "signal" {
		send = func(i int) error { return h.c.SignalWorkflow(ctx, id(i), "", "event", payload) }
	}
	// handled waits until the sink workflows (in this process's worker)
	// have handled `want` more signals than at handled0.
	handled := func(handled0 int64, want int, since time.Time) error {
		for sinkHandled.Load()-handled0 < int64(want) {
			if time.Since(since) > 2*time.Minute {
				return fmt.Errorf("%d of %d signals handled after 2 minutes", sinkHandled.Load()-handled0, want)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	// Started and waiting before the clock starts, like the journeys the
	// events go into.
	warm0, warmStart := sinkHandled.Load(), time.Now()
	if _, err := parallel(workflowsN, 16, start); err != nil {
		return r, fmt.Errorf("start the sink workflows: %w", err)
	}
	if err := handled(warm0, workflowsN, warmStart); err != nil {
		return r, fmt.Errorf("start the sink workflows: %w", err)
	}
	handled0 := sinkHandled.Load()
	r.m = begin()
	r.accepted, err = parallel(n, 16, send)
	if err != nil {
		return r, err
	}
	if err := handled(handled0, n, r.m.t0); err != nil {
		return r, err
	}
	r.elapsed = time.Since(r.m.t0)
	r.processed = float64(n) / r.elapsed.Seconds()
	r.cpu = r.m.cpuNow()
	return r, nil
}
