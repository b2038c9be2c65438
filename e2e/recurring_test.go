package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestRecurringBroadcastSendsEveryOccurrence: a Temporal Schedule (as
// `starter schedule create` makes one) triggered three times sends three
// occurrences; each reaches every contact once, under keys of its own.
func TestRecurringBroadcastSendsEveryOccurrence(t *testing.T) {
	t.Parallel()
	const contacts, occurrences = 20, 3
	s := newBroadcastStack(t, nil)
	s.StartWorker(t)
	run := testenv.RandomID(4)
	domain := "recurring-" + run + ".example"
	s.seed(t, contacts, domain)
	s.forgetMail(t, domain)
	id := "digest-" + run

	ctx := context.Background()
	h, err := s.Client.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   "test-recurring-" + run,
		Spec: client.ScheduleSpec{}, // triggered by the test only
		Action: &client.ScheduleWorkflowAction{
			ID: workflows.BroadcastWorkflowID(id), Workflow: workflows.BroadcastWorkflowName,
			Args: []any{s.input(id)}, TaskQueue: s.Cfg.Temporal.TaskQueue,
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Delete(context.Background()) })

	var runs []string
	for n := 1; n <= occurrences; n++ {
		// A schedule names a run by its start time to the second.
		time.Sleep(1100 * time.Millisecond)
		require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
		stacktest.WaitFor(t, 60*time.Second, fmt.Sprintf("occurrence %d to complete", n), func() (bool, string) {
			d, err := h.Describe(ctx)
			if err != nil {
				return false, err.Error()
			}
			if len(d.Info.RecentActions) < n {
				return false, fmt.Sprintf("%d runs started", len(d.Info.RecentActions))
			}
			wf := d.Info.RecentActions[n-1].StartWorkflowResult
			desc, err := s.Client.DescribeWorkflowExecution(ctx, wf.WorkflowID, wf.FirstExecutionRunID)
			if err != nil {
				return false, err.Error()
			}
			st := desc.GetWorkflowExecutionInfo().GetStatus()
			if st == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				runs = append(runs, wf.WorkflowID)
				return true, ""
			}
			require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, st, "run %s", wf.WorkflowID)
			return false, st.String()
		})
	}

	// Each run reached every contact: three emails each, three keys each.
	by := s.delivered(t, domain)
	require.Len(t, by, contacts)
	for addr, msgs := range by {
		require.Len(t, msgs, occurrences, "emails to %s", addr)
		ids := map[string]bool{}
		for _, m := range msgs {
			ids[m.MessageID] = true
		}
		require.Len(t, ids, occurrences, "each occurrence has its own Message-ID (%s)", addr)
	}
	var keys, occ int
	require.NoError(t, s.store.Pool().QueryRow(ctx, `
SELECT count(*), count(DISTINCT split_part(send_key, '/', 4)) FROM email_log
WHERE status = 'sent' AND send_key LIKE '%/broadcast/' || $1 || '/%'`, id).Scan(&keys, &occ))
	require.Equal(t, contacts*occurrences, keys)
	require.Equal(t, occurrences, occ)

	// Occurrence 1 run again (a restart of that run) sends nothing again.
	again, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: runs[0], TaskQueue: s.Cfg.Temporal.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.BroadcastWorkflowName, s.input(id))
	require.NoError(t, err)
	var p workflows.BroadcastProgress
	require.NoError(t, again.Get(ctx, &p))
	require.Zero(t, p.Sent)
	require.Equal(t, contacts, p.Duplicate)
}
