package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/customer"
)

// An event sent as an update is applied by the journey's loop like a
// signal, and the caller gets the journey's view after it; an invalid
// event is rejected before it enters the history.
func TestEventAsUpdateAnswersWithTheOutcome(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	fake := newFakeCRM(t)
	env.RegisterWorkflowWithOptions(CustomerJourney, workflow.RegisterOptions{Name: WorkflowName})
	fake.register(env)
	env.SetStartTime(monday)

	var views []JourneyView
	var rejected []error
	callback := func() *testsuite.TestUpdateCallback {
		return &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { rejected = append(rejected, err) },
			OnComplete: func(v any, err error) {
				require.NoError(t, err)
				views = append(views, v.(JourneyView))
			},
		}
	}
	// No signup yet: the journey is pending, which keeps it in one run.
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateEvent, "u1", callback(), Event{ID: "pv", Type: "pricing_viewed", At: monday})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateEvent, "u2", callback(), Event{ID: "pv", Type: "pricing_viewed", At: monday})
		env.UpdateWorkflow(UpdateEvent, "u3", callback(), Event{ID: "", Type: "login"})
	}, 2*time.Minute)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(WorkflowName, JourneyInput{CustomerID: "upd", CampaignID: "test-lifecycle"})

	require.Len(t, views, 2)
	assert.Equal(t, customer.StagePending, views[0].Stage)
	assert.Equal(t, 10, views[0].Score, "the caller sees the event's points at once")
	assert.Equal(t, 10, views[1].Score, "the same event id again counts once")
	require.Len(t, rejected, 1)
	assert.Contains(t, rejected[0].Error(), "id: must not be empty")
}
