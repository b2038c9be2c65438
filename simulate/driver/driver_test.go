package driver_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/simulate/driver"
)

type counterInput struct {
	Count, PerRun int
	StartedAt     []time.Time
}

// counter counts "inc" signals, continues as new every PerRun of them, and
// completes on "stop".
func counter(ctx workflow.Context, in counterInput) (int, error) {
	in.StartedAt = append(in.StartedAt, workflow.Now(ctx))
	if err := workflow.SetQueryHandler(ctx, "count", func() (int, error) { return in.Count, nil }); err != nil {
		return 0, err
	}
	inc := workflow.GetSignalChannel(ctx, "inc")
	stop := workflow.GetSignalChannel(ctx, "stop")
	for n := 0; ; {
		stopped := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(inc, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); in.Count++; n++ })
		sel.AddReceive(stop, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); stopped = true })
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return in.Count, temporal.NewCanceledError()
		}
		if stopped {
			return in.Count, nil
		}
		if n >= in.PerRun {
			return 0, workflow.NewContinueAsNewError(ctx, counter, in)
		}
	}
}

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Thousands of signals (more than the test environment's callback queue
// holds) reach the workflow across continue-as-new, each at its time.
func TestSignalsFollowContinueAsNew(t *testing.T) {
	suite := quietSuite()
	var signals []*driver.Signal
	const n = 2500
	for i := range n {
		signals = append(signals, &driver.Signal{At: start.Add(time.Duration(i+1) * time.Minute), Name: "inc"})
	}
	signals = append(signals, &driver.Signal{At: start.Add(time.Duration(n+1) * time.Minute), Name: "stop"})
	var carried []counterInput
	var observed []time.Time
	out, err := driver.Run[counterInput]{
		Suite: &suite, Workflow: counter, Name: "counter",
		Start: start, Until: start.Add(7 * 24 * time.Hour), Signals: signals,
		Every:           6 * time.Hour,
		Observe:         func(env *driver.Env) { observed = append(observed, env.Now()) },
		OnContinueAsNew: func(next counterInput, bytes int) { carried = append(carried, next); assert.Positive(t, bytes) },
	}.Execute(counterInput{PerRun: 100})
	require.NoError(t, err)
	assert.True(t, out.Completed)
	var count int
	require.NoError(t, out.Env.GetWorkflowResult(&count))
	assert.Equal(t, n, count)
	assert.Equal(t, n/100+1, out.Runs)
	require.Len(t, carried, n/100)
	last := carried[len(carried)-1]
	require.Len(t, last.StartedAt, n/100)
	for k, at := range last.StartedAt {
		assert.Equal(t, start.Add(time.Duration(k*100)*time.Minute), at.UTC(), "run %d starts where the previous one ended", k+1)
	}
	for _, s := range signals {
		assert.True(t, s.Sent())
	}
	require.NotEmpty(t, observed)
	for i, o := range observed {
		assert.Equal(t, start.Add(time.Duration(i+1)*6*time.Hour), o.UTC(), "observations on the grid, across runs")
	}
	assert.Equal(t, start.Add(time.Duration(n+1)*time.Minute), out.Ended.UTC())
}

func TestDeadlineCancelsAndLeavesLaterSignals(t *testing.T) {
	suite := quietSuite()
	late := &driver.Signal{At: start.Add(48 * time.Hour), Name: "stop"}
	early := &driver.Signal{At: start.Add(time.Hour), Name: "inc"}
	var atDeadline int
	out, err := driver.Run[counterInput]{
		Suite: &suite, Workflow: counter, Name: "counter",
		Start: start, Until: start.Add(24 * time.Hour), Signals: []*driver.Signal{late, early},
		AtDeadline: func(env *driver.Env) {
			v, err := env.QueryWorkflow("count")
			require.NoError(t, err)
			require.NoError(t, v.Get(&atDeadline))
		},
	}.Execute(counterInput{PerRun: 10})
	require.NoError(t, err)
	assert.False(t, out.Completed)
	assert.Equal(t, 1, atDeadline)
	assert.True(t, early.Sent())
	assert.False(t, late.Sent(), "after the deadline")
	assert.Equal(t, start.Add(24*time.Hour), out.Ended.UTC())
}

func TestWorkflowFailureIsAnError(t *testing.T) {
	suite := quietSuite()
	failing := func(workflow.Context, counterInput) (int, error) {
		return 0, errors.New("boom")
	}
	_, err := driver.Run[counterInput]{Suite: &suite, Workflow: failing, Name: "failing", Start: start, Until: start.Add(time.Hour)}.
		Execute(counterInput{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom")
}

func TestTooManyRuns(t *testing.T) {
	suite := quietSuite()
	var signals []*driver.Signal
	for i := range 20 {
		signals = append(signals, &driver.Signal{At: start.Add(time.Duration(i+1) * time.Minute), Name: "inc"})
	}
	_, err := driver.Run[counterInput]{Suite: &suite, Workflow: counter, Name: "counter", Start: start,
		Until: start.Add(time.Hour), Signals: signals, MaxRuns: 5}.Execute(counterInput{PerRun: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "more than 5 times")
}

// quietSuite keeps the test environment's debug log out of the test output.
func quietSuite() testsuite.WorkflowTestSuite {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return s
}
