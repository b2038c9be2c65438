// Package e2e runs journeys and broadcasts end to end on the real stack:
// the Temporal dev server, PostgreSQL and Mailpit that `make test` starts. A
// worker is built exactly as the worker command builds it
// (internal/workerapp), on a task queue of its own, against a fresh CRM
// database.
//
// With RECORD_HISTORIES=1 the tests also write the histories of the journeys
// they ran to workflows/testdata/histories, where the replay test checks
// every workflow change against them (`make record-histories`).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// stack is one test's view of the real servers (see stacktest.Stack).
type stack struct {
	*stacktest.Stack
}

// newStack connects to the servers and prepares a configuration with a
// fresh database and a task queue of its own; scale is the time scale.
func newStack(t *testing.T, scale float64) *stack {
	t.Helper()
	return &stack{stacktest.New(t, map[string]string{
		"TEMPORAL_TASK_QUEUE": "e2e-" + testenv.RandomID(4), "TIME_SCALE": fmt.Sprint(scale),
	})}
}

func (s *stack) starter() workflows.Starter {
	return workflows.Starter{Client: s.Client, TaskQueue: s.Cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: s.Cfg.TimeScale}
}

// waitStage waits until the journey's query reports the stage.
func (s *stack) waitStage(t *testing.T, customerID, stage string, timeout time.Duration) workflows.JourneyView {
	t.Helper()
	var v workflows.JourneyView
	stacktest.WaitFor(t, timeout, customerID+" in stage "+stage, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		v, err = workflows.State(ctx, s.Client, customerID)
		if err != nil {
			return false, err.Error()
		}
		return string(v.Stage) == stage, string(v.Stage)
	})
	return v
}

// clearHistories empties the current release's set once per recording.
var clearHistories sync.Once

// recordHistories writes every run of a journey to
// workflows/testdata/histories/<release>/<name>-<n>.json when
// RECORD_HISTORIES=1 (the histories of older releases stay: running
// journeys of every release must replay).
func (s *stack) recordHistories(t *testing.T, customerID, name string) {
	t.Helper()
	if os.Getenv("RECORD_HISTORIES") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = %q", workflows.JourneyID(customerID)),
	})
	require.NoError(t, err)
	dir := filepath.Join("..", "workflows", "testdata", "histories", workflows.Release)
	clearHistories.Do(func() {
		old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range old {
			require.NoError(t, os.Remove(f))
		}
	})
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, ex := range resp.GetExecutions() {
		var events []*historypb.HistoryEvent
		it := s.Client.GetWorkflowHistory(ctx, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			events = append(events, e)
		}
		decryptHistory(t, s.Encryption.Codec, events)
		raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
		require.NoError(t, err)
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.json", name, i+1))
		require.NoError(t, os.WriteFile(file, raw, 0o644))
		t.Logf("recorded %s (%d events, %s)", file, len(events), ex.GetStatus())
	}
}
