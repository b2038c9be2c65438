// Package driver runs a long-lived workflow in Temporal's time-skipping test
// environment (go.temporal.io/sdk/testsuite) across continue-as-new: each
// run executes in a fresh test environment that starts where the previous
// run ended, scripted signals are delivered at their time whichever run is
// current, and the whole thing stops at a deadline (the workflow is
// cancelled) or when the workflow completes.
//
// The test environment itself does not follow continue-as-new: a run that
// continues returns a *workflow.ContinueAsNewError carrying the next input.
// The driver decodes that input and starts the next run with it, which is
// what the Temporal server would do.
//
// It is used by the workflow tests (workflows/harness_test.go) and by
// `starter simulate` (package simulate). It depends on no workflow of this
// project, so the workflows package's own tests can use it.
package driver

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// Signal is a signal delivered to the workflow at a time.
type Signal struct {
	At      time.Time
	Name    string
	Payload any
	// OnSend, when set, is called just before the signal is delivered (in
	// the test environment's time, so env.Now() is At or later).
	OnSend func()

	sent bool
}

// Sent reports whether the signal was delivered.
func (s *Signal) Sent() bool { return s.sent }

// Env is the test environment of one run.
type Env = testsuite.TestWorkflowEnvironment

// Run describes a multi-run execution of a workflow whose input type is In.
type Run[In any] struct {
	// Suite creates the test environments (its logger is used).
	Suite *testsuite.WorkflowTestSuite
	// Workflow is the workflow function, registered under Name.
	Workflow any
	Name     string
	// Setup is called before each run starts (env.Now() is the run's start
	// time): it registers the activities (and may point fakes at env.Now).
	Setup func(env *Env)
	// Start is the start time of the first run; Until the deadline, at
	// which a workflow still running is cancelled.
	Start, Until time.Time
	// Signals are delivered at their time; signals after Until are not.
	// Execute sorts the slice by time (stable).
	Signals []*Signal
	// MaxRuns bounds the number of runs (default 500).
	MaxRuns int
	// SuggestContinueAsNewEvery, when > 0, raises Temporal's
	// continue-as-new suggestion this long into every run (the test
	// environment does not count history, so this stands in for it).
	SuggestContinueAsNewEvery time.Duration
	// Every, when > 0, calls Observe every Every of workflow time, counted
	// from Start, while a run is in progress (for progress reports and to
	// query the workflow).
	Every   time.Duration
	Observe func(env *Env)
	// AtDeadline is called when Until is reached, before the workflow is
	// cancelled (e.g. to query its final state).
	AtDeadline func(env *Env)
	// OnContinueAsNew is called with the input of every next run and the
	// size of that input as JSON (the state carried across).
	OnContinueAsNew func(next In, bytes int)
	// IdleTimeout is the wall-clock time a run may stay without progress
	// before the test environment gives up (default 1 minute).
	IdleTimeout time.Duration
}

// agenda registers the run's callbacks: due signals, the continue-as-new
// suggestion, observations and the deadline. The test environment queues
// registrations in a bounded channel (1,000) before the run starts, so a
// single callback at a time walks through the agenda and registers the
// next one when it fires.
func (r Run[In]) agenda(env *Env, runStart time.Time) {
	pending := make([]*Signal, 0, len(r.Signals))
	for _, s := range r.Signals {
		if !s.sent && !s.At.After(r.Until) {
			pending = append(pending, s)
		}
	}
	var suggestAt, nextTick time.Time
	if r.SuggestContinueAsNewEvery > 0 {
		suggestAt = runStart.Add(r.SuggestContinueAsNewEvery)
	}
	if r.Every > 0 && r.Observe != nil {
		// Ticks on the grid Start + k*Every, so observations do not depend
		// on where runs begin.
		nextTick = r.Start.Add(time.Duration(int64(runStart.Sub(r.Start)/r.Every)+1) * r.Every)
	}
	due := func(t, now time.Time) bool { return !t.IsZero() && !t.After(now) }
	var step func(now time.Time)
	step = func(now time.Time) {
		next := r.Until
		consider := func(t time.Time) {
			if !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		if len(pending) > 0 {
			consider(pending[0].At)
		}
		consider(suggestAt)
		if !nextTick.Before(r.Until) {
			nextTick = time.Time{}
		}
		consider(nextTick)
		env.RegisterDelayedCallback(func() {
			now := env.Now()
			for len(pending) > 0 && due(pending[0].At, now) {
				s := pending[0]
				pending = pending[1:]
				if s.sent {
					continue
				}
				s.sent = true
				if s.OnSend != nil {
					s.OnSend()
				}
				env.SignalWorkflow(s.Name, s.Payload)
			}
			if due(suggestAt, now) {
				suggestAt = time.Time{}
				env.SetContinueAsNewSuggested(true)
			}
			for due(nextTick, now) && nextTick.Before(r.Until) {
				nextTick = nextTick.Add(r.Every)
				observe(r.Observe, env)
			}
			if !now.Before(r.Until) {
				if r.AtDeadline != nil {
					observe(r.AtDeadline, env)
				}
				env.CancelWorkflow()
				return
			}
			step(now)
		}, max(next.Sub(now), 0))
	}
	step(runStart)
}

// observe calls f, unless the run has not started its workflow yet: a
// tick or the deadline due at the very instant a run begins (a
// continue-as-new at a stage change on the hour) fires before the test
// environment has the workflow, and its QueryWorkflow then panics instead
// of returning an error. The previous run's end was observed (its
// continue-as-new input) at that instant already.
func observe(f func(*Env), env *Env) {
	defer func() { _ = recover() }()
	f(env)
}

// Outcome is how the execution ended.
type Outcome struct {
	// Runs is the number of runs executed.
	Runs int
	// Completed is true when the workflow returned (its result is in Env);
	// false when it was cancelled at the deadline.
	Completed bool
	// Env is the environment of the last run: GetWorkflowResult and
	// QueryWorkflow work on it.
	Env *Env
	// Ended is the workflow time at which the last run ended.
	Ended time.Time
}

// Execute runs the workflow from in until it completes or Until is reached.
// It fails when the workflow fails (anything but completion, continue-as-new
// or the cancellation at the deadline) or runs more than MaxRuns times.
func (r Run[In]) Execute(in In) (Outcome, error) {
	maxRuns := r.MaxRuns
	if maxRuns <= 0 {
		maxRuns = 500
	}
	idle := r.IdleTimeout
	if idle <= 0 {
		idle = time.Minute
	}
	sort.SliceStable(r.Signals, func(i, j int) bool { return r.Signals[i].At.Before(r.Signals[j].At) })
	now := r.Start
	var out Outcome
	for {
		out.Runs++
		if out.Runs > maxRuns {
			return out, fmt.Errorf("workflow continued as new more than %d times (at %s)", maxRuns, now.Format(time.RFC3339))
		}
		env := r.Suite.NewTestWorkflowEnvironment()
		env.SetTestTimeout(idle)
		env.SetStartTime(now)
		env.RegisterWorkflowWithOptions(r.Workflow, workflow.RegisterOptions{Name: r.Name})
		if r.Setup != nil {
			r.Setup(env)
		}
		r.agenda(env, now)
		env.ExecuteWorkflow(r.Name, in)
		now = env.Now()
		out.Env, out.Ended = env, now
		if !env.IsWorkflowCompleted() {
			return out, fmt.Errorf("run %d did not complete (at %s)", out.Runs, now.Format(time.RFC3339))
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		switch {
		case errors.As(err, &can):
			var next In
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				return out, fmt.Errorf("run %d: decode continue-as-new input: %w", out.Runs, err)
			}
			if r.OnContinueAsNew != nil {
				size := 0
				if can.Input != nil {
					for _, p := range can.Input.Payloads {
						size += len(p.GetData())
					}
				}
				r.OnContinueAsNew(next, size)
			}
			in = next
			continue
		case err == nil:
			out.Completed = true
			return out, nil
		case temporal.IsCanceledError(err):
			return out, nil
		default:
			return out, fmt.Errorf("workflow failed in run %d at %s: %w", out.Runs, now.Format(time.RFC3339), err)
		}
	}
}
