package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/simulate/driver"
)

// What a journey asks Temporal to do is what it costs (actions, history
// events, server work): these tests pin it down.

// commandLog records the activities and timers of a journey's runs.
type commandLog struct {
	mu                            sync.Mutex
	activities                    []string // regular ones: a round trip through the server each
	local                         []string // local activities: run inside a workflow task
	timersStarted, timersCanceled int
}

func (l *commandLog) watch(env *driver.Env) {
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.activities = append(l.activities, info.ActivityType.Name)
	})
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.local = append(l.local, info.ActivityType.Name)
	})
	env.SetOnTimerScheduledListener(func(string, time.Duration) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.timersStarted++
	})
	env.SetOnTimerCanceledListener(func(string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.timersCanceled++
	})
}

func TestSignupIsOneRunWithOneActivityTheEmail(t *testing.T) {
	var log commandLog
	r := newJourneyRun(t, monday).signup(0, coldLead("one"))
	r.onEnv = log.watch
	r.run(r.input("one"), time.Hour)

	assert.Equal(t, 1, r.runs, "the signup's stage change does not continue-as-new: the run loaded the newest campaign moments before")
	assert.Equal(t, []string{"LoadCampaign", "WriteCRM"}, log.local, "campaign and CRM: local activities")
	assert.Equal(t, []string{"SendEmail"}, log.activities, "the welcome email: the only regular activity")
	assert.Equal(t, []customer.Stage{customer.StageTrial}, r.fake.stages(), "the transition is recorded with the contact, in one batch")
	assert.Equal(t, 3, r.view.FitScore, "the fit score is computed from the profile")
	if assert.Len(t, r.fake.Records().Scores, 1) {
		assert.Equal(t, 3, r.fake.Records().Scores[0].Score, "and the score is in the CRM")
	}
	assert.Equal(t, []string{"welcome:welcome"}, r.fake.templatesSent())
}

func TestSignupLongAfterAnEarlyEventContinuesAsNewForTheNewestCampaign(t *testing.T) {
	// The journey started with an event and waited a day for the signup:
	// its campaign may be stale, so the signup's stage change is a boundary.
	r := newJourneyRun(t, monday).event(0, "early", "pricing_viewed").signup(day, coldLead("late"))
	r.run(r.input("late"), day+time.Hour)
	assert.Equal(t, 2, r.runs)
	assert.Equal(t, customer.StageTrial, r.view.Stage)
}

func TestEngagementKeepsTheWaitTimer(t *testing.T) {
	var log commandLog
	r := newJourneyRun(t, monday).signup(0, coldLead("keep")).
		event(2*time.Hour, "o1", "email_opened").
		event(3*time.Hour, "o2", "email_opened").
		event(4*time.Hour, "o3", "pricing_viewed")
	r.onEnv = log.watch
	r.run(r.input("keep"), 20*time.Hour)

	assert.Equal(t, 0, log.timersCanceled, "no event brought the next step (tips, day 1) forward")
	assert.Equal(t, 1, log.timersStarted, "one timer, for the tips email")
	assert.Equal(t, []string{"LoadCampaign", "WriteCRM", "WriteCRM", "WriteCRM", "WriteCRM"}, log.local,
		"each event: its log write and its score in one local activity")
	assert.Equal(t, []string{"SendEmail"}, log.activities)
	assert.Equal(t, 3+1+1+10, r.view.Score, "every event applied")
}

func TestDecayFollowsTheLastEngagementWhileTimersAreKept(t *testing.T) {
	// Every engagement moves the decay tick later; a timer kept for an
	// earlier due time must not make decay happen early.
	r := newJourneyRun(t, monday).signup(0, coldLead("tick")).
		event(4*day, "p1", "pricing_viewed").
		event(6*day, "p2", "pricing_viewed")
	r.run(r.input("tick"), 13*day+time.Hour)
	assert.Equal(t, 3+20-5, r.view.Score, "one decay period (7 days after the last engagement), not two")
	decays := 0
	for _, e := range r.view.Timeline {
		if e.Kind == "score" && e.Detail == "decay → 18" {
			decays++
		}
	}
	assert.Equal(t, 1, decays)
}

// onUpsert hands every search-attribute upsert of a run to record, under
// mu (the test reads what it recorded under mu too).
func onUpsert(env *driver.Env, mu *sync.Mutex, record func(temporal.SearchAttributes)) {
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		mu.Lock()
		defer mu.Unlock()
		record(args.Get(0).(temporal.SearchAttributes))
	}).Return(nil)
}

func TestLeadScoreSearchAttributeMovesInSteps(t *testing.T) {
	// Fit 3 (engineer) + opens of 1 point: 4, 5, 6, 7 → the attribute
	// stays 0, a pricing view (17) → 10.
	var mu sync.Mutex
	var upserted []int64
	r := newJourneyRun(t, monday).signup(0, coldLead("band"))
	for i, id := range []string{"o1", "o2", "o3", "o4"} {
		r.event(time.Duration(i+2)*time.Hour, id, "email_opened")
	}
	r.event(7*time.Hour, "p1", "pricing_viewed")
	r.onEnv = func(env *driver.Env) {
		onUpsert(env, &mu, func(sa temporal.SearchAttributes) {
			if v, ok := sa.GetInt64(AttrScore); ok {
				upserted = append(upserted, v)
			}
		})
	}
	r.run(r.input("band"), 20*time.Hour)

	assert.Equal(t, 3+4+10, r.view.Score, "the exact score is in the state query")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int64{0, 10}, upserted, "LeadScore is upserted only when the score crosses a step")
}

func TestVisibleScoreRoundsDownToAStep(t *testing.T) {
	for score, want := range map[int]int64{0: 0, 9: 0, 10: 10, 43: 40, 59: 50, 60: 60, -1: -10, -10: -10} {
		assert.Equal(t, want, VisibleScore(score), "score %d", score)
	}
}

func TestSignupTaskUpsertsSearchAttributesOnce(t *testing.T) {
	// Campaign loaded, contact registered, stage trial: the first workflow
	// task changes the attributes three times and writes them once.
	var mu sync.Mutex
	var upserts []temporal.SearchAttributes
	r := newJourneyRun(t, monday).signup(0, coldLead("once"))
	r.onEnv = func(env *driver.Env) {
		onUpsert(env, &mu, func(sa temporal.SearchAttributes) { upserts = append(upserts, sa) })
	}
	r.run(r.input("once"), time.Hour)

	mu.Lock()
	defer mu.Unlock()
	if assert.Len(t, upserts, 1) {
		stage, _ := upserts[0].GetKeyword(AttrStage)
		customerID, _ := upserts[0].GetKeyword(AttrCustomerID)
		assert.Equal(t, string(customer.StageTrial), stage)
		assert.Equal(t, "once", customerID)
	}
}

func TestUnsubscribeWritesTheFinalStageBeforeTheJourneyEnds(t *testing.T) {
	var mu sync.Mutex
	var stages []string
	r := newJourneyRun(t, monday).signup(0, coldLead("bye")).event(time.Hour, "u1", "unsubscribe")
	r.onEnv = func(env *driver.Env) {
		onUpsert(env, &mu, func(sa temporal.SearchAttributes) {
			if v, ok := sa.GetKeyword(AttrStage); ok {
				stages = append(stages, v)
			}
		})
	}
	r.run(r.input("bye"), 2*time.Hour)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{string(customer.StageTrial), string(customer.StageUnsubscribed)}, stages,
		"the UI lists an ended journey under the stage it ended in")
}

func TestStageIsVisibleBeforeTheHandoffEmailGoesOut(t *testing.T) {
	// The owner's email may be slow (SMTP retries): the UI must already
	// list the journey under sales while it is being sent.
	var mu sync.Mutex
	var order []string
	r := newJourneyRun(t, monday).signup(0, hotLead("h2")).event(day+time.Hour, "e1", "pricing_viewed")
	r.onEnv = func(env *driver.Env) {
		onUpsert(env, &mu, func(sa temporal.SearchAttributes) {
			if v, ok := sa.GetKeyword(AttrStage); ok {
				// A new run after continue-as-new writes its attributes
				// again in the test environment (the server carries them
				// over): count a stage once.
				if len(order) == 0 || order[len(order)-1] != "stage "+v {
					order = append(order, "stage "+v)
				}
			}
		})
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
			var in activities.SendEmailInput
			if info.ActivityType.Name != "SendEmail" || args.Get(&in) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			order = append(order, "email "+in.Template)
		})
	}
	r.run(r.input("h2"), day+2*time.Hour)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"stage trial", "email welcome", "email tips", "stage sales", "email handoff"}, order)
}
