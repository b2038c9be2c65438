package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
)

// fakePages is a segment of n recipients "c0000".."c<n-1>", served in pages.
type fakePages struct {
	mu    sync.Mutex
	n     int
	calls []activities.BroadcastPageInput
	// failFirst makes the first attempt of every page fail this many times.
	failFirst int
	fails     map[string]int
}

func (f *fakePages) BroadcastSendPage(in activities.BroadcastPageInput) (activities.BroadcastPageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.fails == nil {
		f.fails = map[string]int{}
	}
	if f.fails[in.Cursor] < f.failFirst {
		f.fails[in.Cursor]++
		return activities.BroadcastPageResult{}, errors.New("smtp: 421 try again later")
	}
	start := 0
	if in.Cursor != "" {
		if _, err := fmt.Sscanf(in.Cursor, "c%04d", &start); err != nil {
			return activities.BroadcastPageResult{}, fmt.Errorf("cursor %q is not one of this fake's: %w", in.Cursor, err)
		}
		start++
	}
	size := in.Broadcast.PageSizeOrDefault()
	end := min(start+size, f.n)
	r := activities.BroadcastPageResult{Done: end-start < size, CampaignVersion: "v7"}
	for i := start; i < end; i++ {
		switch {
		case i%10 == 0:
			r.Suppressed++
		case i%25 == 1:
			r.Deferred++
		default:
			r.Sent++
		}
	}
	if end > start {
		r.NextCursor = fmt.Sprintf("c%04d", end-1)
	}
	return r, nil
}

func newBroadcastEnv(f *fakePages) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(BroadcastWorkflow, workflow.RegisterOptions{Name: BroadcastWorkflowName})
	env.RegisterActivity(f)
	return env
}

func broadcastInput() BroadcastInput {
	return BroadcastInput{BroadcastID: "xmas-2026", CampaignID: "saas-lifecycle", Template: "holiday_year_end", PageSize: 100}
}

// run executes the broadcast across its continue-as-new runs and returns
// the final progress, the number of runs and the inputs they started with.
func runBroadcast(t *testing.T, f *fakePages, in BroadcastInput) (BroadcastProgress, []BroadcastInput) {
	t.Helper()
	var inputs []BroadcastInput
	for range 100 {
		inputs = append(inputs, in)
		env := newBroadcastEnv(f)
		env.ExecuteWorkflow(BroadcastWorkflowName, in)
		require.True(t, env.IsWorkflowCompleted())
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			require.Equal(t, BroadcastWorkflowName, can.WorkflowType.Name)
			var next BroadcastInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			in = next
			continue
		}
		require.NoError(t, err)
		var p BroadcastProgress
		require.NoError(t, env.GetWorkflowResult(&p))
		return p, inputs
	}
	t.Fatal("too many runs")
	return BroadcastProgress{}, nil
}

func TestBroadcastPagesUntilDone(t *testing.T) {
	f := &fakePages{n: 1234}
	p, inputs := runBroadcast(t, f, broadcastInput())
	require.Len(t, inputs, 1)
	require.True(t, p.Done)
	require.Equal(t, 13, p.Pages)
	require.Equal(t, 1234, p.Recipients())
	require.Equal(t, 124, p.Suppressed) // every tenth: 0, 10, ... 1230
	require.Equal(t, "c1233", p.Cursor)
	require.False(t, p.StartedAt.IsZero())
	require.False(t, p.FinishedAt.Before(p.StartedAt))

	// Each page starts where the last one ended, with the input (without
	// carried state) and the campaign version the first page resolved.
	require.Len(t, f.calls, 13)
	require.Equal(t, "", f.calls[0].Cursor)
	require.Equal(t, "", f.calls[0].Broadcast.CampaignVersion)
	for i := 1; i < 13; i++ {
		require.Equal(t, fmt.Sprintf("c%04d", i*100-1), f.calls[i].Cursor)
		require.Equal(t, "v7", f.calls[i].Broadcast.CampaignVersion)
	}
}

func TestBroadcastOfAnEmptySegment(t *testing.T) {
	p, _ := runBroadcast(t, &fakePages{n: 0}, broadcastInput())
	require.True(t, p.Done)
	require.Equal(t, 1, p.Pages)
	require.Equal(t, 0, p.Recipients())
}

func TestBroadcastContinuesAsNewCarryingCursorAndProgress(t *testing.T) {
	old := broadcastPagesPerRun
	broadcastPagesPerRun = 4
	t.Cleanup(func() { broadcastPagesPerRun = old })

	f := &fakePages{n: 1050}
	p, inputs := runBroadcast(t, f, broadcastInput())
	require.Len(t, inputs, 3) // 11 pages, 4 per run
	require.Equal(t, 11, p.Pages)
	require.Equal(t, 1050, p.Recipients())
	require.True(t, p.Done)

	second := inputs[1]
	require.Equal(t, "c0399", second.Cursor)
	require.Equal(t, "c0399", second.Progress.Cursor)
	require.Equal(t, 4, second.Progress.Pages)
	require.Equal(t, 400, second.Progress.Recipients())
	require.Equal(t, "v7", second.CampaignVersion, "the resolved version is pinned across runs")
	require.True(t, inputs[0].Progress.StartedAt.IsZero())
	require.False(t, second.Progress.StartedAt.IsZero())
	require.Equal(t, second.Progress.StartedAt, p.StartedAt, "the start time is carried")
	// The next run asks for the page after the cursor: nothing twice.
	seen := map[string]bool{}
	for _, c := range f.calls {
		require.False(t, seen[c.Cursor], "page after %q sent twice", c.Cursor)
		seen[c.Cursor] = true
	}
}

func TestBroadcastContinuesAsNewWhenSuggested(t *testing.T) {
	f := &fakePages{n: 1000}
	env := newBroadcastEnv(f)
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(BroadcastWorkflowName, broadcastInput())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next BroadcastInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, 1, next.Progress.Pages, "at least one page per run")
	require.Equal(t, "c0099", next.Cursor)
}

func TestBroadcastProgressQuery(t *testing.T) {
	f := &fakePages{n: 450}
	env := newBroadcastEnv(f)
	var seen []BroadcastProgress
	// Query after every page: the activity mock runs synchronously, so
	// a callback on each completed activity sees the progress before it.
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) {
		v, err := env.QueryWorkflow(QueryBroadcastProgress)
		require.NoError(t, err)
		var p BroadcastProgress
		require.NoError(t, v.Get(&p))
		seen = append(seen, p)
	})
	env.ExecuteWorkflow(BroadcastWorkflowName, broadcastInput())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, seen, 5)
	for i, p := range seen {
		require.Equal(t, i, p.Pages, "the query answers with the pages done before")
		require.Equal(t, i*100, p.Recipients())
		require.False(t, p.Done)
	}
	v, err := env.QueryWorkflow(QueryBroadcastProgress)
	require.NoError(t, err)
	var final BroadcastProgress
	require.NoError(t, v.Get(&final))
	require.True(t, final.Done)
	require.Equal(t, 450, final.Recipients())
	require.Equal(t, "c0449", final.Cursor)
}

func TestBroadcastRetriesAFailingPage(t *testing.T) {
	f := &fakePages{n: 250, failFirst: 2}
	p, _ := runBroadcast(t, f, broadcastInput())
	require.True(t, p.Done)
	require.Equal(t, 250, p.Recipients(), "nothing counted twice")
	require.Len(t, f.calls, 9) // 3 pages, each failing twice first
}

func TestBroadcastFailsOnANonRetryableError(t *testing.T) {
	env := newBroadcastEnv(&fakePages{})
	env.OnActivity(a.BroadcastSendPage, mock.Anything, mock.Anything).Return(activities.BroadcastPageResult{},
		temporal.NewNonRetryableApplicationError("template x not found", activities.ErrBadInput, nil)).Once()
	env.ExecuteWorkflow(BroadcastWorkflowName, broadcastInput())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "template x not found")
}

func TestBroadcastRejectsBadInput(t *testing.T) {
	cases := map[string]func(*BroadcastInput){
		"broadcast_id":               func(in *BroadcastInput) { in.BroadcastID = "" },
		"broadcast_id ":              func(in *BroadcastInput) { in.BroadcastID = "a/b" }, //nolint:gocritic // a second case for the field; compared trimmed
		"campaign_id":                func(in *BroadcastInput) { in.CampaignID = "" },
		"template":                   func(in *BroadcastInput) { in.Template = "" },
		"segment.stages[0]":          func(in *BroadcastInput) { in.Segment.Stages = []string{"lapsed"} },
		"segment.lead_sources[1]":    func(in *BroadcastInput) { in.Segment.LeadSources = []string{"cold", "friend"} },
		"rate_per_second":            func(in *BroadcastInput) { in.RatePerSecond = -1 },
		"page_size":                  func(in *BroadcastInput) { in.PageSize = MaxBroadcastPageSize + 1 },
		"segment.customer_id_prefix": func(in *BroadcastInput) { in.Segment.CustomerIDPrefix = " x" },
	}
	for field, mutate := range cases {
		in := broadcastInput()
		mutate(&in)
		err := in.Validate()
		var ierr *BroadcastInputError
		require.ErrorAs(t, err, &ierr, field)
		require.Equal(t, strings.TrimSpace(field), ierr.Field)
		require.Contains(t, err.Error(), strings.TrimSpace(field))
	}
	require.NoError(t, broadcastInput().Validate())

	// The workflow refuses it too, without retrying.
	env := newBroadcastEnv(&fakePages{})
	bad := broadcastInput()
	bad.Template = ""
	env.ExecuteWorkflow(BroadcastWorkflowName, bad)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, activities.ErrBadInput, appErr.Type())
}

func TestStartBroadcastRejectsBadInputNamingTheField(t *testing.T) {
	// Validation comes before any call to Temporal (no client needed).
	in := BroadcastInput{BroadcastID: "bad input", CampaignID: "saas-lifecycle", Template: "holiday_new_year"}
	_, err := StartBroadcast(context.Background(), nil, "q", in)
	var ierr *BroadcastInputError
	require.True(t, errors.As(err, &ierr), "%v", err)
	require.Equal(t, "broadcast_id", ierr.Field)
}

// A run a Temporal Schedule started is one occurrence: every page of it
// (across continue-as-new) sends under that occurrence's keys; a one-off
// run has none.
func TestScheduledBroadcastRunSendsAsItsOccurrence(t *testing.T) {
	for name, tc := range map[string]struct{ workflowID, occurrence string }{
		"scheduled": {BroadcastWorkflowID("xmas-2026") + "-2026-12-07T09:00:00Z", "2026-12-07T09:00:00Z"},
		"one-off":   {BroadcastWorkflowID("xmas-2026"), ""},
		"other id":  {BroadcastWorkflowID("xmas-2026-eu") + "-2026-12-07T09:00:00Z", ""},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakePages{n: 250}
			env := newBroadcastEnv(f)
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: tc.workflowID})
			env.ExecuteWorkflow(BroadcastWorkflowName, broadcastInput())
			require.NoError(t, env.GetWorkflowError())
			require.Len(t, f.calls, 3)
			for _, c := range f.calls {
				require.Equal(t, tc.occurrence, c.Broadcast.Occurrence)
			}
		})
	}
}

func TestOccurrenceKeysDifferPerOccurrence(t *testing.T) {
	b := activities.Broadcast{BroadcastID: "digest"}
	oneOff := b.SendKey("c1")
	b.Occurrence = "2026-12-07T09:00:00Z"
	first := b.SendKey("c1")
	b.Occurrence = "2026-12-14T09:00:00Z"
	second := b.SendKey("c1")
	require.Equal(t, "c1/broadcast/digest", oneOff)
	require.Equal(t, "c1/broadcast/digest/2026-12-07T09:00:00Z", first)
	require.NotEqual(t, first, second)
}
