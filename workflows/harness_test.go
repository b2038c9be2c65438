package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/simulate/driver"
)

// fakeCRM stands in for the activities in workflow tests: it behaves like
// the real CRM where the workflow depends on it (the event log answers which
// events are new, sends are keyed) and records what the journey asked for,
// with the test clock's time. Side effects themselves are tested against the
// real PostgreSQL and Mailpit in the activities and crm packages.
type fakeCRM struct {
	mu  sync.Mutex
	now func() time.Time
	reg *campaign.Registry

	sends       []sent
	sentKeys    map[string]int
	events      map[string]bool
	transitions []activities.TransitionInput
	handoffs    []activities.HandoffInput
	statuses    map[string][]string
	tasks       []activities.TaskInput
	suppressed  map[string]string
	erased      []string
	contacts    []activities.Contact
	scores      []activities.ScoreInput
	// writes lists every CRM write made, in order (its Op).
	writes []string

	// Faults a test injects, by the test clock: the CRM is unreachable
	// before crmDownUntil; a campaign version is missing before
	// campaignMissingUntil; send (when set) decides a send's outcome
	// before the fake's own rules (nil: go on as usual).
	crmDownUntil         time.Time
	campaignMissingUntil time.Time
	crmAttempts          int
	send                 func(in activities.SendEmailInput) *sendOutcome
}

// sendOutcome is what a test makes a send return.
type sendOutcome struct {
	res activities.SendEmailResult
	err error
}

var (
	_ activities.JourneyActivities = (*fakeCRM)(nil)
	_ activities.CRMWriter         = (*fakeCRM)(nil)
)

type sent struct {
	Key, To, Template, Step string
	At                      time.Time
}

func newFakeCRM(t *testing.T) *fakeCRM {
	reg := campaign.NewRegistry()
	c, err := campaign.LoadFile("testdata/test-campaign.yaml")
	require.NoError(t, err)
	require.NoError(t, reg.Add(c))
	return &fakeCRM{reg: reg, sentKeys: map[string]int{}, events: map[string]bool{}, statuses: map[string][]string{}, suppressed: map[string]string{}}
}

func (f *fakeCRM) LoadCampaign(_ context.Context, in activities.LoadCampaignInput) (*campaign.Campaign, error) {
	f.mu.Lock()
	missing := f.now != nil && f.now().Before(f.campaignMissingUntil)
	f.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("load campaign: campaign %s version %q is not deployed", in.ID, in.Version)
	}
	if in.Latest || in.Version == "" {
		return f.reg.Latest(in.ID)
	}
	return f.reg.Get(in.ID, in.Version)
}

func (f *fakeCRM) UpsertContact(_ context.Context, in activities.Contact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts = append(f.contacts, in)
	return nil
}

// WriteCRM makes a batch of writes as the real activity does, with the
// fake's own writers.
func (f *fakeCRM) WriteCRM(ctx context.Context, in activities.WriteCRMInput) (activities.WriteCRMResult, error) {
	f.mu.Lock()
	f.crmAttempts++
	down := f.now().Before(f.crmDownUntil)
	if !down {
		for _, w := range in.Writes {
			f.writes = append(f.writes, w.Op())
		}
	}
	f.mu.Unlock()
	if down {
		return activities.WriteCRMResult{}, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	return activities.ApplyWrites(ctx, f, in)
}

func (f *fakeCRM) RecordScore(_ context.Context, in activities.ScoreInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scores = append(f.scores, in)
	return nil
}

func (f *fakeCRM) RecordEvents(_ context.Context, in activities.RecordEventsInput) (activities.RecordEventsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res activities.RecordEventsResult
	for _, e := range in.Events {
		if !f.events[e.ID] {
			f.events[e.ID] = true
			res.New = append(res.New, e.ID)
		}
	}
	return res, nil
}

func (f *fakeCRM) RecordTransition(_ context.Context, in activities.TransitionInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.transitions {
		if t.Key == in.Key {
			return nil
		}
	}
	in.At = in.At.UTC()
	f.transitions = append(f.transitions, in)
	return nil
}

func (f *fakeCRM) SendEmail(_ context.Context, in activities.SendEmailInput) (activities.SendEmailResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.send != nil {
		if out := f.send(in); out != nil {
			return out.res, out.err
		}
	}
	c, err := f.reg.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		return activities.SendEmailResult{}, err
	}
	if _, err := c.Render(in.Template, in.Data); err != nil {
		return activities.SendEmailResult{}, err
	}
	f.sentKeys[in.Key]++
	if f.sentKeys[in.Key] > 1 {
		return activities.SendEmailResult{Status: activities.SendDuplicate}, nil
	}
	if _, ok := f.suppressed[in.To]; ok && c.Templates[in.Template].Category != campaign.Transactional {
		return activities.SendEmailResult{Status: activities.SendSuppressed}, nil
	}
	f.sends = append(f.sends, sent{Key: in.Key, To: in.To, Template: in.Template, Step: in.Step, At: f.now().UTC()})
	return activities.SendEmailResult{Status: activities.SendSent}, nil
}

func (f *fakeCRM) CreateHandoff(_ context.Context, in activities.HandoffInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handoffs = append(f.handoffs, in)
	return nil
}

func (f *fakeCRM) SetHandoffStatus(_ context.Context, in activities.HandoffStatusInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[in.Key] = append(f.statuses[in.Key], in.Status)
	return nil
}

func (f *fakeCRM) CreateTask(_ context.Context, in activities.TaskInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks = append(f.tasks, in)
	return nil
}

func (f *fakeCRM) Suppress(_ context.Context, in activities.SuppressInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppressed[in.Email] = in.Reason
	return nil
}

func (f *fakeCRM) EraseContact(_ context.Context, in activities.EraseInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.erased = append(f.erased, in.CustomerID)
	return nil
}

func (f *fakeCRM) templatesSent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.sends))
	for i, s := range f.sends {
		out[i] = s.Step + ":" + s.Template
	}
	return out
}

func (f *fakeCRM) stages() []campaign.Stage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]campaign.Stage, len(f.transitions))
	for i, t := range f.transitions {
		out[i] = t.To
	}
	return out
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
			env.RegisterActivity(r.fake)
			r.fake.now = env.Now
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
