package broadcast

import (
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
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakePages is a segment of n recipients "c0000".."c<n-1>", served in pages.
type fakePages struct {
	mu    sync.Mutex
	n     int
	calls []PageInput
	// failFirst makes the first attempt of every page fail this many times.
	failFirst int
	fails     map[string]int
}

func (f *fakePages) SendPage(in PageInput) (PageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.fails == nil {
		f.fails = map[string]int{}
	}
	if f.fails[in.Cursor] < f.failFirst {
		f.fails[in.Cursor]++
		return PageResult{}, errors.New("smtp: 421 try again later")
	}
	start := 0
	if in.Cursor != "" {
		fmt.Sscanf(in.Cursor, "c%04d", &start)
		start++
	}
	size := in.Input.pageSize()
	end := min(start+size, f.n)
	r := PageResult{Done: end-start < size, CampaignVersion: "v7"}
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

func newEnv(t *testing.T, f *fakePages) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivityWithOptions(f.SendPage, activity.RegisterOptions{Name: ActivitySendPage})
	return env
}

func input() Input {
	return Input{BroadcastID: "xmas-2026", CampaignID: "saas-lifecycle", Template: "holiday_year_end", PageSize: 100}
}

// run executes the broadcast across its continue-as-new runs and returns
// the final progress, the number of runs and the inputs they started with.
func run(t *testing.T, f *fakePages, in Input) (Progress, []Input) {
	t.Helper()
	var inputs []Input
	for range 100 {
		inputs = append(inputs, in)
		env := newEnv(t, f)
		env.ExecuteWorkflow(WorkflowName, in)
		require.True(t, env.IsWorkflowCompleted())
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			require.Equal(t, WorkflowName, can.WorkflowType.Name)
			var next Input
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			in = next
			continue
		}
		require.NoError(t, err)
		var p Progress
		require.NoError(t, env.GetWorkflowResult(&p))
		return p, inputs
	}
	t.Fatal("too many runs")
	return Progress{}, nil
}

func TestBroadcastPagesUntilDone(t *testing.T) {
	f := &fakePages{n: 1234}
	p, inputs := run(t, f, input())
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
	require.Equal(t, "", f.calls[0].Input.CampaignVersion)
	for i := 1; i < 13; i++ {
		require.Equal(t, fmt.Sprintf("c%04d", i*100-1), f.calls[i].Cursor)
		require.Equal(t, "v7", f.calls[i].Input.CampaignVersion)
		require.Equal(t, Progress{}, f.calls[i].Input.Progress)
	}
}

func TestBroadcastOfAnEmptySegment(t *testing.T) {
	p, _ := run(t, &fakePages{n: 0}, input())
	require.True(t, p.Done)
	require.Equal(t, 1, p.Pages)
	require.Equal(t, 0, p.Recipients())
}

func TestBroadcastContinuesAsNewCarryingCursorAndProgress(t *testing.T) {
	old := pagesPerRun
	pagesPerRun = 4
	t.Cleanup(func() { pagesPerRun = old })

	f := &fakePages{n: 1050}
	p, inputs := run(t, f, input())
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
	env := newEnv(t, f)
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(WorkflowName, input())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, 1, next.Progress.Pages, "at least one page per run")
	require.Equal(t, "c0099", next.Cursor)
}

func TestBroadcastProgressQuery(t *testing.T) {
	f := &fakePages{n: 450}
	env := newEnv(t, f)
	var seen []Progress
	// Query after every page: the activity mock runs synchronously, so
	// a callback on each completed activity sees the progress before it.
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) {
		v, err := env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		var p Progress
		require.NoError(t, v.Get(&p))
		seen = append(seen, p)
	})
	env.ExecuteWorkflow(WorkflowName, input())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, seen, 5)
	for i, p := range seen {
		require.Equal(t, i, p.Pages, "the query answers with the pages done before")
		require.Equal(t, i*100, p.Recipients())
		require.False(t, p.Done)
	}
	v, err := env.QueryWorkflow(QueryProgress)
	require.NoError(t, err)
	var final Progress
	require.NoError(t, v.Get(&final))
	require.True(t, final.Done)
	require.Equal(t, 450, final.Recipients())
	require.Equal(t, "c0449", final.Cursor)
}

func TestBroadcastRetriesAFailingPage(t *testing.T) {
	f := &fakePages{n: 250, failFirst: 2}
	p, _ := run(t, f, input())
	require.True(t, p.Done)
	require.Equal(t, 250, p.Recipients(), "nothing counted twice")
	require.Len(t, f.calls, 9) // 3 pages, each failing twice first
}

func TestBroadcastFailsOnANonRetryableError(t *testing.T) {
	env := newEnv(t, &fakePages{})
	env.OnActivity(ActivitySendPage, mock.Anything, mock.Anything).Return(PageResult{},
		temporal.NewNonRetryableApplicationError("template x not found", ErrBadInput, nil)).Once()
	env.ExecuteWorkflow(WorkflowName, input())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "template x not found")
}

func TestBroadcastRejectsBadInput(t *testing.T) {
	cases := map[string]func(*Input){
		"broadcast_id":               func(in *Input) { in.BroadcastID = "" },
		"broadcast_id ":              func(in *Input) { in.BroadcastID = "a/b" },
		"campaign_id":                func(in *Input) { in.CampaignID = "" },
		"template":                   func(in *Input) { in.Template = "" },
		"segment.stages[0]":          func(in *Input) { in.Segment.Stages = []string{"lapsed"} },
		"segment.lead_sources[1]":    func(in *Input) { in.Segment.LeadSources = []string{"cold", "friend"} },
		"rate_per_second":            func(in *Input) { in.RatePerSecond = -1 },
		"page_size":                  func(in *Input) { in.PageSize = MaxPageSize + 1 },
		"segment.customer_id_prefix": func(in *Input) { in.Segment.CustomerIDPrefix = " x" },
	}
	for field, mutate := range cases {
		in := input()
		mutate(&in)
		err := in.Validate()
		var ierr *InputError
		require.ErrorAs(t, err, &ierr, field)
		require.Equal(t, strings.TrimSpace(field), ierr.Field)
		require.Contains(t, err.Error(), strings.TrimSpace(field))
	}
	require.NoError(t, input().Validate())

	// The workflow refuses it too, without retrying.
	env := newEnv(t, &fakePages{})
	bad := input()
	bad.Template = ""
	env.ExecuteWorkflow(WorkflowName, bad)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, ErrBadInput, appErr.Type())
}
