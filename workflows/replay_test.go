package workflows

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from the real dev
// server (e2e tests with RECORD_HISTORIES=1, `make record-histories`)
// against the current workflow code: a change that would break running
// journeys (non-determinism) fails here, before it is deployed. There is a
// set per logic revision (testdata/histories/logic-N): journeys of every
// revision may still be running, so every set must replay.
func TestReplayRecordedHistories(t *testing.T) {
	current := filepath.Join("testdata", "histories", fmt.Sprintf("logic-%d", LogicRevision))
	files, err := filepath.Glob(filepath.Join(current, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories of the current logic revision in %s: run `make record-histories`", current)

	files, err = filepath.Glob(filepath.Join("testdata", "histories", "logic-*", "*.json"))
	require.NoError(t, err)
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			replayer.RegisterWorkflowWithOptions(CustomerJourney, workflow.RegisterOptions{Name: WorkflowName})
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(logger, file))
		})
	}
}
