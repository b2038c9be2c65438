package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// One journey day is one second in these tests.
const scale = 86400

func hotLead(id string) workflows.Signup {
	return workflows.Signup{
		CustomerID: id, Email: id + "@e2e.example", FirstName: "Ada", LastName: id, Company: "Engines Ltd",
		Role: "cto", CompanySize: 1500, LeadSource: "referral", TimeZone: "Europe/Berlin",
	}
}

// TestSignupToOnboarding: signup → welcome email → an engagement event
// crosses the threshold → handoff row in the CRM and the owner's email →
// deal_won → onboarding emails; stage and score visible through search
// attributes.
func TestSignupToOnboarding(t *testing.T) {
	s := newStack(t, scale)
	app := s.StartWorker(t)
	ctx := context.Background()
	id := "e2e-" + testenv.RandomID(4)
	st := s.starter()

	_, err := st.Signup(ctx, hotLead(id))
	require.NoError(t, err)
	welcome := s.WaitMail(t, id+"@e2e.example", "your trial has started", 30*time.Second)
	assert.Contains(t, welcome.Subject, "Ada")

	contact, err := app.CRM.GetContact(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "trial", contact.Stage)
	assert.Equal(t, "Europe/Berlin", contact.TimeZone)

	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-act", Type: "trial_activated", At: time.Now()}))
	v := s.waitStage(t, id, "sales", 30*time.Second)
	assert.GreaterOrEqual(t, v.Score, 60)

	// The owner's mailbox is shared by every test: the unique name picks ours.
	owner := s.WaitMail(t, "sales@acme.example", "New qualified lead: Ada "+id, 30*time.Second)
	assert.Contains(t, owner.Subject, "Engines Ltd")
	handoffKey := id + "/" + v.Journey + "/handoff/2"
	handoff, err := app.CRM.GetHandoff(ctx, handoffKey)
	require.NoError(t, err, "handoff row written with the sales stage entry")
	assert.GreaterOrEqual(t, handoff.Score, 60)
	require.NotEmpty(t, handoff.Reasons)

	// Search attributes: engineers find the journey by stage and score.
	stacktest.WaitFor(t, 30*time.Second, "visibility to show the journey in sales", func() (bool, string) {
		resp, err := s.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`CustomerID = %q AND JourneyStage = "sales" AND LeadScore >= 60 AND ExecutionStatus = "Running"`, id),
		})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) == 1, fmt.Sprintf("%d executions", len(resp.GetExecutions()))
	})

	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-won", Type: "deal_won", At: time.Now()}))
	s.waitStage(t, id, "onboarding", 30*time.Second)
	s.WaitMail(t, id+"@e2e.example", "Here's your onboarding plan", 30*time.Second)
	// Day 3 of onboarding is three seconds later (plus quiet hours and the
	// frequency cap, in journey time).
	s.WaitMail(t, id+"@e2e.example", "connect the rest of your data", 30*time.Second)

	handoff, err = app.CRM.GetHandoff(ctx, handoffKey)
	require.NoError(t, err)
	assert.Equal(t, "won", handoff.Status)
	contact, err = app.CRM.GetContact(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "onboarding", contact.Stage)
	assert.Equal(t, "success@acme.example", contact.DeliveryOwnerEmail)

	// Each email once: no subject twice for this customer.
	seen := map[string]int{}
	for _, m := range s.Mails(t, "to:"+id+"@e2e.example") {
		seen[m.Subject]++
	}
	for subject, n := range seen {
		assert.Equal(t, 1, n, "%q sent %d times", subject, n)
	}
	s.recordHistories(t, id, "signup-to-onboarding")
}

// TestUnsubscribeStopsMailAtOnce: an unsubscribe during the trial ends the
// journey; the activation tips (due a journey day later) never go out, and
// the address is on the suppression list.
func TestUnsubscribeStopsMailAtOnce(t *testing.T) {
	// One journey day is ten seconds: the tips are due well after the
	// unsubscribe arrives, whatever the dispatch latency of this machine.
	s := newStack(t, 8640)
	app := s.StartWorker(t)
	ctx := context.Background()
	id := "e2e-" + testenv.RandomID(4)
	st := s.starter()
	signup := hotLead(id)
	signup.LeadSource, signup.Role, signup.CompanySize = "cold", "engineer", 5

	run, err := st.Signup(ctx, signup)
	require.NoError(t, err)
	s.WaitMail(t, id+"@e2e.example", "your trial has started", 30*time.Second)
	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-unsub", Type: "unsubscribe", At: time.Now()}))

	// The journey continues-as-new at stage boundaries: follow the chain.
	stacktest.WaitFor(t, 30*time.Second, "journey to end unsubscribed", func() (bool, string) {
		v, err := workflows.State(ctx, s.Client, id)
		if err != nil {
			return false, err.Error()
		}
		return v.Stage == "unsubscribed", string(v.Stage)
	})
	_ = run
	suppressed, reason, err := app.CRM.IsSuppressed(ctx, signup.Email)
	require.NoError(t, err)
	assert.True(t, suppressed)
	assert.Equal(t, customer.ReasonUnsubscribed, reason)

	// The journey has completed: no timer is left that could send the tips.
	for _, m := range s.Mails(t, "to:"+signup.Email) {
		assert.NotContains(t, m.Subject, "3 things to try", "activation tips sent after the unsubscribe")
	}
	s.recordHistories(t, id, "unsubscribe")
}

// TestEventAsUpdateWithStart: a caller that needs the outcome sends an
// event as an update and gets the new score back in the same call; before
// the journey exists, update-with-start creates it.
func TestEventAsUpdateWithStart(t *testing.T) {
	s := newStack(t, 1)
	s.StartWorker(t)
	ctx := context.Background()
	id := "e2e-" + testenv.RandomID(4)
	st := s.starter()

	v, err := st.ApplyEvent(ctx, id, workflows.Event{ID: id + "-pv", Type: "pricing_viewed", At: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, "pending", string(v.Stage), "the event arrived before any signup")
	assert.Equal(t, 10, v.Score)

	v, err = st.ApplyEvent(ctx, id, workflows.Event{ID: id + "-demo", Type: "demo_requested", At: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, 40, v.Score, "pricing_viewed 10 + demo_requested 30")

	_, err = st.ApplyEvent(ctx, id, workflows.Event{ID: "", Type: "login"})
	require.Error(t, err, "an invalid event is refused before it reaches the journey")
	s.recordHistories(t, id, "event-update")
}

// TestEventsReachTheJourney: Starter.Events on the real server. The first
// event for a customer without a journey starts a pending one
// (signal-with-start); later ones go to the running journey (plain
// signals); a journey an operator terminated is started afresh by the next
// event, and one that ended (unsubscribed) refuses events.
func TestEventsReachTheJourney(t *testing.T) {
	s := newStack(t, 1)
	s.StartWorker(t)
	ctx := context.Background()
	id := "e2e-" + testenv.RandomID(4)
	st := s.starter()
	behaviour := func(want int) workflows.JourneyView {
		t.Helper()
		var v workflows.JourneyView
		stacktest.WaitFor(t, 30*time.Second, fmt.Sprintf("%s behaviour score %d", id, want), func() (bool, string) {
			var err error
			if v, err = workflows.State(ctx, s.Client, id); err != nil {
				return false, err.Error()
			}
			return v.BehaviourScore == want, fmt.Sprintf("stage %s, behaviour %d", v.Stage, v.BehaviourScore)
		})
		return v
	}
	current := func() (runID string, status enumspb.WorkflowExecutionStatus) {
		t.Helper()
		d, err := s.Client.DescribeWorkflowExecution(ctx, workflows.JourneyID(id), "")
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), d.GetWorkflowExecutionInfo().GetStatus()
	}

	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-pv", Type: "pricing_viewed", At: time.Now()}))
	v := behaviour(10)
	assert.Equal(t, "pending", string(v.Stage), "the event arrived before any signup")
	first, _ := current()

	// The repeated pricing_viewed is deduplicated by id: 10 + 30.
	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-demo", Type: "demo_requested", At: time.Now()},
		workflows.Event{ID: id + "-pv", Type: "pricing_viewed", At: time.Now()}))
	behaviour(40)
	run, _ := current()
	assert.Equal(t, first, run, "the running journey got the events")

	require.NoError(t, s.Client.TerminateWorkflow(ctx, workflows.JourneyID(id), "", "operator stops a broken journey"))
	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-pv2", Type: "pricing_viewed", At: time.Now()}))
	behaviour(10)
	run, _ = current()
	assert.NotEqual(t, first, run, "a terminated journey is started afresh")

	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-unsub", Type: "unsubscribe", At: time.Now()}))
	stacktest.WaitFor(t, 30*time.Second, id+" journey completed", func() (bool, string) {
		_, status := current()
		return status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, status.String()
	})
	err := st.Events(ctx, id, workflows.Event{ID: id + "-late", Type: "login", At: time.Now()})
	require.ErrorIs(t, err, workflows.ErrJourneyEnded)
}

// TestSecondJourneySendsItsOwnWelcome: idempotency keys belong to a journey
// instance, not to the customer. A customer whose journey ended (here an
// operator terminated it) and who signs up again gets a new journey with
// its own welcome and its own stage changes in the CRM.
func TestSecondJourneySendsItsOwnWelcome(t *testing.T) {
	s := newStack(t, 1)
	app := s.StartWorker(t)
	ctx := context.Background()
	id := "e2e-" + testenv.RandomID(4)
	st := s.starter()
	signup := hotLead(id)
	signup.LeadSource, signup.Role, signup.CompanySize = "cold", "engineer", 5
	signup.TimeZone = stacktest.DaytimeZone(t)

	_, err := st.Signup(ctx, signup)
	require.NoError(t, err)
	s.WaitMail(t, signup.Email, "your trial has started", 30*time.Second)
	first := s.waitStage(t, id, "trial", 10*time.Second)
	require.NoError(t, s.Client.TerminateWorkflow(ctx, workflows.JourneyID(id), "", "test: the first journey ends"))

	_, err = st.Signup(ctx, signup)
	require.NoError(t, err)
	var second workflows.JourneyView
	stacktest.WaitFor(t, 30*time.Second, "a second journey", func() (bool, string) {
		second, err = workflows.State(ctx, s.Client, id)
		if err != nil {
			return false, err.Error()
		}
		return second.Journey != first.Journey && second.Stage == "trial", second.Journey + " " + string(second.Stage)
	})
	stacktest.WaitFor(t, 30*time.Second, "the second welcome", func() (bool, string) {
		n := 0
		for _, m := range s.Mails(t, "to:"+signup.Email) {
			if strings.Contains(m.Subject, "your trial has started") {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%d welcomes", n)
	})
	ids := map[string]bool{}
	for _, m := range s.Mails(t, "to:"+signup.Email) {
		if strings.Contains(m.Subject, "your trial has started") {
			ids[m.MessageID] = true
		}
	}
	assert.Len(t, ids, 2, "each journey's welcome has its own Message-ID")

	var transitions int
	require.NoError(t, app.CRM.Pool().QueryRow(ctx,
		`SELECT count(*) FROM stage_transitions WHERE customer_id = $1 AND to_stage = 'trial'`, id).Scan(&transitions))
	assert.Equal(t, 2, transitions, "both journeys' stage changes are in the CRM")
}
