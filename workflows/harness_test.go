package workflows

import (
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/simulate/driver"
)

// fakeCRM is the in-memory CRM and mailer (package inmemory, which
// `starter simulate` uses too) with the test campaign loaded, and the views
// of what it recorded that the tests compare. It behaves like the real CRM
// where the workflow depends on it; side effects themselves are tested
// against the real PostgreSQL and Mailpit in the activities and crm
// packages.
type fakeCRM struct {
	*inmemory.CRM
	reg *campaign.Registry
}

func newFakeCRM(t *testing.T) *fakeCRM {
	reg := campaign.NewRegistry()
	c, err := campaign.LoadFile("testdata/test-campaign.yaml")
	require.NoError(t, err)
	require.NoError(t, reg.Add(c))
	return &fakeCRM{CRM: inmemory.New(reg), reg: reg}
}

// register makes env run the journey's activities on the fake, by env's
// clock.
func (f *fakeCRM) register(env *driver.Env) {
	env.RegisterActivity(f.Activities())
	f.SetClock(env.Now)
}

// sends are the emails that went out.
func (f *fakeCRM) sends() []inmemory.Mail { return f.Records().Sent() }

// templatesSent lists "step:template" of every email sent.
func (f *fakeCRM) templatesSent() []string {
	var out []string
	for _, m := range f.sends() {
		out = append(out, m.Step+":"+m.Template)
	}
	return out
}

// stages lists the stages the CRM recorded, in order.
func (f *fakeCRM) stages() []customer.Stage {
	var out []customer.Stage
	for _, t := range f.Records().Transitions {
		out = append(out, t.To)
	}
	return out
}

// eventLogged reports whether the CRM's event log has the event.
func (f *fakeCRM) eventLogged(id string) bool {
	return slices.ContainsFunc(f.Records().Events, func(e activities.EventRecord) bool { return e.ID == id })
}

// journeyRun drives a journey through as many runs (continue-as-new) as it
// takes, each in a fresh time-skipping test environment that starts where
// the previous run ended, until the journey completes or `until` is reached
// (simulate/driver does the driving; `starter simulate` uses it too).
type journeyRun struct {
	t       *testing.T
	suite   testsuite.WorkflowTestSuite
	fake    *fakeCRM
	start   time.Time
	script  []*driver.Signal
	runs    int
	carried []int // bytes of state carried by each continue-as-new
	result  *JourneyResult
	view    JourneyView
	ended   time.Time
	// suggestContinueAsNewEvery raises Temporal's continue-as-new
	// suggestion this long into every run.
	suggestContinueAsNewEvery time.Duration
	// onRun is called before each run starts, with the time it starts at.
	onRun func(now time.Time)
	// onEnv is called with each run's test environment before it starts
	// (listeners that watch what the journey asks Temporal to do).
	onEnv func(env *driver.Env)
}

func newJourneyRun(t *testing.T, start time.Time) *journeyRun {
	r := &journeyRun{t: t, fake: newFakeCRM(t), start: start}
	// The test environment logs every timer at debug level; keep warnings.
	r.suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	return r
}

func (r *journeyRun) at(d time.Duration, signal string, payload any) *journeyRun {
	r.script = append(r.script, &driver.Signal{At: r.start.Add(d), Name: signal, Payload: payload})
	return r
}

func (r *journeyRun) signup(d time.Duration, s Signup) *journeyRun { return r.at(d, SignalSignup, s) }

func (r *journeyRun) event(d time.Duration, id, typ string) *journeyRun {
	return r.at(d, SignalEvent, Event{ID: id, Type: typ, At: r.start.Add(d)})
}

func (r *journeyRun) input(customerID string) JourneyInput {
	return JourneyInput{CustomerID: customerID, CampaignID: "test-lifecycle"}
}

// run executes until the journey ends or `until` after the start.
func (r *journeyRun) run(in JourneyInput, until time.Duration) {
	t := r.t
	out, err := driver.Run[JourneyInput]{
		Suite:    &r.suite,
		Workflow: CustomerJourney,
		Name:     WorkflowName,
		Setup: func(env *driver.Env) {
			r.fake.register(env)
			if r.onRun != nil {
				r.onRun(env.Now())
			}
			if r.onEnv != nil {
				r.onEnv(env)
			}
		},
		Start:                     r.start,
		Until:                     r.start.Add(until),
		Signals:                   r.script,
		SuggestContinueAsNewEvery: r.suggestContinueAsNewEvery,
		AtDeadline: func(env *driver.Env) {
			if v, err := env.QueryWorkflow(QueryState); err == nil {
				_ = v.Get(&r.view)
			}
		},
		OnContinueAsNew: func(next JourneyInput, _ int) {
			raw, _ := json.Marshal(next)
			r.carried = append(r.carried, len(raw))
			r.view = viewOf(next)
		},
	}.Execute(in)
	r.runs, r.ended = out.Runs, out.Ended
	require.NoError(t, err, "journey failed")
	if out.Completed {
		var res JourneyResult
		require.NoError(t, out.Env.GetWorkflowResult(&res))
		r.result = &res
		if v, qerr := out.Env.QueryWorkflow(QueryState); qerr == nil {
			_ = v.Get(&r.view)
		}
	}
}

func viewOf(in JourneyInput) JourneyView {
	s := in.State
	return JourneyView{CustomerID: s.CustomerID, Stage: s.Stage, Score: s.score(), FitScore: s.Fit, BehaviourScore: s.Behaviour, Run: s.Run, Timeline: s.Timeline}
}
