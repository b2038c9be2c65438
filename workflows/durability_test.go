package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/customer"
)

// These tests pin down "nothing accepted is lost": CRM writes survive a
// database outage (in order, across continue-as-new, before the journey
// ends), a send that no longer fits is cancelled while it waits or
// retries, a hard bounce stops mail, and a missing campaign version makes
// the journey wait instead of failing.

func timelineHas(v JourneyView, kind, part string) bool {
	for _, e := range v.Timeline {
		if e.Kind == kind && strings.Contains(e.Detail, part) {
			return true
		}
	}
	return false
}

func TestCRMOutageDelaysWritesButLosesNone(t *testing.T) {
	outage := 30 * time.Minute
	during := newJourneyRun(t, monday).signup(0, coldLead("o1")).
		event(5*time.Minute, "e1", "pricing_viewed").
		event(10*time.Minute, "e2", "email_opened")
	during.fake.SetCRMDownUntil(monday.Add(outage))
	during.run(during.input("o1"), 20*time.Minute)

	assert.Equal(t, []string{"welcome:welcome"}, during.fake.templatesSent(), "the journey goes on while the CRM is away")
	assert.Empty(t, during.fake.Records().Writes, "nothing reached the CRM yet")
	assert.Equal(t, 7, during.view.CRMBacklog, "contact, trial, score; two events with a score each: all waiting")
	assert.Contains(t, during.view.CRMError, "connection refused")
	assert.False(t, during.view.CRMRetryAt.IsZero(), "the next try is announced")
	assert.Equal(t, 3+10+1, during.view.Score, "events are applied while their CRM writes wait")

	after := newJourneyRun(t, monday).signup(0, coldLead("o1")).
		event(5*time.Minute, "e1", "pricing_viewed").
		event(10*time.Minute, "e2", "email_opened")
	after.fake.SetCRMDownUntil(monday.Add(outage))
	after.run(after.input("o1"), 2*time.Hour)

	assert.Equal(t, []string{"contact", "transition", "score", "events", "score", "events", "score"}, after.fake.Records().Writes,
		"every write, once, in the order the journey made them")
	assert.True(t, after.fake.eventLogged("e1") && after.fake.eventLogged("e2"), "both events are in the event log")
	require.NotEmpty(t, after.fake.Records().Scores)
	assert.Equal(t, 14, after.fake.Records().Scores[len(after.fake.Records().Scores)-1].Score, "the CRM holds the journey's score")
	assert.Zero(t, after.view.CRMBacklog)
	assert.True(t, timelineHas(after.view, "crm", "CRM caught up"), "the timeline says when the CRM caught up")
	assert.Greater(t, after.fake.Records().WriteAttempts, 5, "retried with backoff")
	assert.Less(t, after.fake.Records().WriteAttempts, 60, "backoff, not a retry per second")
}

func TestCRMBacklogIsCarriedAcrossContinueAsNew(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("o2")).
		event(20*time.Minute, "e1", "pricing_viewed")
	r.fake.SetCRMDownUntil(monday.Add(45 * time.Minute))
	r.suggestContinueAsNewEvery = 10 * time.Minute
	r.run(r.input("o2"), 2*time.Hour)

	require.Greater(t, r.runs, 3, "the journey continued as new during the outage")
	assert.Equal(t, []string{"contact", "transition", "score", "events", "score"}, r.fake.Records().Writes)
	assert.Equal(t, []customer.Stage{customer.StageTrial}, r.fake.stages())
	assert.Zero(t, r.view.CRMBacklog)
}

func TestJourneyEndsOnlyAfterItsCRMWritesAreIn(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("o3")).event(10*time.Minute, "u1", "unsubscribe")
	r.fake.SetCRMDownUntil(monday.Add(time.Hour))
	r.run(r.input("o3"), 3*time.Hour)

	require.NotNil(t, r.result, "the journey ended")
	assert.Equal(t, customer.StageUnsubscribed, r.result.Stage)
	assert.False(t, r.ended.Before(monday.Add(time.Hour)), "not before the CRM had its writes (ended %s)", r.ended)
	assert.Equal(t, "unsubscribed", r.fake.Records().Suppressed["o3@example.com"], "the unsubscribe reached the suppression list")
	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageUnsubscribed}, r.fake.stages())
}

// failingSends makes every send of template fail like an SMTP server that is
// down, until the test clock reaches until.
func failingSends(f *fakeCRM, template string, until time.Time) {
	f.SetSendHook(func(now time.Time, in activities.SendEmailInput) *inmemory.Outcome {
		if in.Template == template && now.Before(until) {
			return &inmemory.Outcome{Err: errors.New("dial tcp 127.0.0.1:1025: connect: connection refused")}
		}
		return nil
	})
}

func TestPurchaseCancelsASendThatIsRetrying(t *testing.T) {
	// The first nurture email (day 3) cannot go out; the customer buys ten
	// minutes later, while it retries (the test environment gives up on an
	// activity after 10 attempts, some 17 minutes): the send is cancelled,
	// onboarding starts at once.
	r := newJourneyRun(t, monday).signup(0, coldLead("p1")).event(3*day+10*time.Minute, "buy", "purchase")
	failingSends(r.fake, "guide", monday.Add(3*day+12*time.Minute))
	r.run(r.input("p1"), 3*day+2*time.Hour)

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageNurture, customer.StageOnboarding}, r.fake.stages())
	assert.Empty(t, sendTimes(r.fake, "n1"), "the nurture email never went out, though SMTP came back")
	assert.Equal(t, []time.Time{monday.Add(3*day + 10*time.Minute)}, sendTimes(r.fake, "day0"), "onboarding started when the purchase came")
	assert.True(t, timelineHas(r.view, "cancelled", "n1"), "the timeline says the send was cancelled: %v", r.view.Timeline)
}

func TestUnsubscribeCancelsASendInFlight(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("u2")).event(day+10*time.Minute, "u", "unsubscribe")
	failingSends(r.fake, "tips", monday.Add(day+12*time.Minute))
	r.run(r.input("u2"), 2*day)

	require.NotNil(t, r.result)
	assert.Equal(t, customer.StageUnsubscribed, r.result.Stage)
	assert.Equal(t, []string{"welcome:welcome"}, r.fake.templatesSent(), "the tips email (retrying since day 1) was not sent, though SMTP came back")
	assert.True(t, r.ended.Equal(monday.Add(day+10*time.Minute)), "the journey ended with the unsubscribe, not after the send's retries (at %s)", r.ended)
}

func TestHardBounceStopsMailToTheCustomer(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("b2"))
	r.fake.SetSendHook(func(_ time.Time, in activities.SendEmailInput) *inmemory.Outcome {
		if in.Template == "welcome" {
			return &inmemory.Outcome{Result: activities.SendEmailResult{Status: activities.SendBounced, Reason: "550 5.1.1 no such user"}}
		}
		return nil
	})
	r.run(r.input("b2"), 5*day)

	assert.Empty(t, r.fake.templatesSent(), "nothing after the bounce")
	assert.True(t, r.view.MailSuppressed, "the journey shows the address as suppressed")
	assert.True(t, timelineHas(r.view, "suppressed", "bounced"))
	assert.Equal(t, customer.StageNurture, r.view.Stage, "the journey goes on without mail")
}

func TestMissingCampaignVersionMakesTheJourneyWait(t *testing.T) {
	waiting := newJourneyRun(t, monday).signup(0, coldLead("w1"))
	waiting.fake.SetCampaignMissingUntil(monday.Add(20 * time.Minute))
	waiting.run(waiting.input("w1"), 10*time.Minute)
	assert.Nil(t, waiting.result, "the journey did not end")
	assert.Contains(t, waiting.view.WaitingFor, "test-lifecycle", "the query says what it waits for")
	assert.Empty(t, waiting.fake.sends())

	r := newJourneyRun(t, monday).signup(0, coldLead("w1"))
	r.fake.SetCampaignMissingUntil(monday.Add(20 * time.Minute))
	r.run(r.input("w1"), time.Hour)
	welcome := sendTimes(r.fake, "welcome")
	require.Len(t, welcome, 1, "the welcome went out once the campaign was there")
	assert.False(t, welcome[0].Before(monday.Add(20*time.Minute)))
	assert.Less(t, welcome[0].Sub(monday), 30*time.Minute, "retried within minutes")
	assert.True(t, timelineHas(r.view, "campaign", "is deployed"))
}
