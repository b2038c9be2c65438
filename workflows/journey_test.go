package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

const day = 24 * time.Hour

// Monday 2 March 2026, 10:00 UTC: inside sending hours.
var monday = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func coldLead(id string) Signup {
	return Signup{CustomerID: id, Email: id + "@example.com", FirstName: "Cole", Role: "engineer", CompanySize: 10, LeadSource: "cold", TimeZone: "UTC"}
}

func hotLead(id string) Signup {
	// referral 25 + cto 10 + 1000+ employees 15 = fit 50
	return Signup{CustomerID: id, Email: id + "@example.com", FirstName: "Hana", Role: "cto", CompanySize: 1500, LeadSource: "referral", TimeZone: "UTC"}
}

func sendTimes(f *fakeCRM, step string) []time.Time {
	var out []time.Time
	for _, s := range f.sends() {
		if s.Step == step {
			out = append(out, s.At)
		}
	}
	return out
}

func TestTrialWelcomesThenNurtureDrips(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("c1"))
	r.run(r.input("c1"), 20*day)

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageNurture}, r.fake.stages())
	assert.Equal(t, []string{"welcome:welcome", "tips:tips", "n1:guide", "n2:guide", "n3:guide"}, r.fake.templatesSent())
	assert.Equal(t, []time.Time{monday}, sendTimes(r.fake, "welcome"))
	assert.Equal(t, []time.Time{monday.Add(day)}, sendTimes(r.fake, "tips"))
	assert.Equal(t, []time.Time{monday.Add(3 * day)}, sendTimes(r.fake, "n1"), "nurture starts when the 3-day trial ends")
	assert.Equal(t, []time.Time{monday.Add(12 * day)}, sendTimes(r.fake, "n3"))
	assert.Equal(t, customer.StageNurture, r.view.Stage)
	assert.Equal(t, 3, r.view.FitScore, "cold engineer in a small company: role points only")
}

func TestScoreAtThresholdHandsOffToSalesWithReasonsAndEscalatesAfterSLA(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, hotLead("h1")).event(day, "e1", "pricing_viewed")
	r.run(r.input("h1"), 5*day)

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageSales}, r.fake.stages())
	require.Len(t, r.fake.Records().Handoffs, 1)
	h := r.fake.Records().Handoffs[0]
	assert.Equal(t, 60, h.Score)
	assert.Equal(t, "sales@test.example", h.OwnerEmail)
	require.Len(t, h.Reasons, 3)
	assert.Equal(t, campaign.Reason{Source: "pricing_viewed", Points: 10}, h.Reasons[2], "the event that tipped the score travels with the handoff")
	assert.Equal(t, monday.Add(2*day), h.SLADue)

	var owner, escalation []inmemory.Mail
	for _, s := range r.fake.sends() {
		switch s.To {
		case "sales@test.example":
			owner = append(owner, s)
		case "lead@test.example":
			escalation = append(escalation, s)
		}
	}
	require.Len(t, owner, 1, "owner notified once")
	assert.Equal(t, monday.Add(day), owner[0].At)
	require.Len(t, escalation, 1, "unaccepted after the 24h SLA: escalated once")
	assert.Equal(t, monday.Add(2*day), escalation[0].At)
	assert.Equal(t, []string{"escalated"}, r.fake.Records().HandoffStatuses[h.Key])
}

func TestDealWonRunsOnboardingThenActive(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, hotLead("w1")).
		event(day, "e1", "pricing_viewed").
		event(day+2*time.Hour, "e2", "sales_accepted").
		event(2*day, "e3", "deal_won")
	r.run(r.input("w1"), 40*day)

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageSales, customer.StageOnboarding, customer.StageActive}, r.fake.stages())
	key := r.fake.Records().Handoffs[0].Key
	assert.Equal(t, []string{"accepted", "won"}, r.fake.Records().HandoffStatuses[key], "accepted in time: no escalation")
	start := monday.Add(2 * day)
	for step, offset := range map[string]time.Duration{"day0": 0, "day3": 3 * day, "day7": 7 * day, "day14": 14 * day, "survey": 30 * day} {
		assert.Equal(t, []time.Time{start.Add(offset)}, sendTimes(r.fake, step), step)
	}
	assert.Equal(t, start.Add(31*day), r.fake.Records().Transitions[3].At, "active after the 31-day onboarding")
	var owners []string
	for _, c := range r.fake.Records().Contacts {
		owners = append(owners, c.DeliveryOwnerEmail)
	}
	assert.Contains(t, owners, "success@test.example", "delivery owner recorded in the CRM")
}

func TestDealLostGoesBackToNurtureWithFreshSequence(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, hotLead("l1")).
		event(day, "e1", "pricing_viewed").
		event(3*day, "e2", "deal_lost")
	r.run(r.input("l1"), 10*day)

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageSales, customer.StageNurture}, r.fake.stages())
	assert.Equal(t, []string{"escalated", "lost"}, r.fake.Records().HandoffStatuses[r.fake.Records().Handoffs[0].Key], "SLA missed on day 2, lost on day 3")
	assert.Equal(t, 0, r.view.BehaviourScore, "behaviour points reset so the lead is not handed straight back")
	assert.Equal(t, 50, r.view.Score)
	// Score 50 is in the decision band (≥ 40): the nurture step uses the offer.
	assert.Equal(t, []time.Time{monday.Add(3 * day)}, sendTimes(r.fake, "n1"))
	assert.Contains(t, r.fake.templatesSent(), "n1:offer")
}

func TestPurchaseDuringNurtureSkipsSales(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("p1")).event(5*day, "e1", "purchase")
	r.run(r.input("p1"), 6*day)
	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageNurture, customer.StageOnboarding}, r.fake.stages())
	assert.Empty(t, r.fake.Records().Handoffs)
	assert.Equal(t, []time.Time{monday.Add(5 * day)}, sendTimes(r.fake, "day0"))
}

// bought: a customer who purchases on day 1 is active from day 32.
func bought(t *testing.T, id string) *journeyRun {
	return newJourneyRun(t, monday).signup(0, coldLead(id)).event(day, id+"-buy", "purchase")
}

func TestInactivityMovesToAtRiskAndActivityReactivates(t *testing.T) {
	activeFrom := monday.Add(32 * day)
	r := bought(t, "r1").event(32*day+35*day, "login-1", "login")
	r.run(r.input("r1"), 80*day)

	stages := r.fake.stages()
	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageOnboarding, customer.StageActive, customer.StageAtRisk, customer.StageActive}, stages)
	atRisk := r.fake.Records().Transitions[3]
	assert.Equal(t, activeFrom.Add(30*day), atRisk.At, "30 days without activity")
	require.Len(t, r.fake.Records().Tasks, 1)
	assert.Equal(t, "churn_warning", r.fake.Records().Tasks[0].Kind)
	assert.Equal(t, "Call Cole", r.fake.Records().Tasks[0].Title)
	assert.Equal(t, atRisk.At.Add(3*day), r.fake.Records().Tasks[0].DueAt)
	assert.Len(t, sendTimes(r.fake, "churn-alert"), 1, "owner alerted")
	assert.Equal(t, []time.Time{atRisk.At}, sendTimes(r.fake, "wb1"))
	assert.Len(t, sendTimes(r.fake, "wb2"), 0, "login on day 5 of at_risk: wb2 (day 7) never sent")
	assert.Contains(t, r.fake.Records().Transitions[4].Reason, "reactivated")
}

func TestAtRiskChurnsThenPeriodicWinBackAndReturn(t *testing.T) {
	activeFrom := monday.Add(32 * day)
	atRisk := activeFrom.Add(30 * day)
	churned := atRisk.Add(30 * day)
	r := bought(t, "ch1").event(churned.Add(200*day).Sub(monday), "back", "login")
	r.run(r.input("ch1"), churned.Add(201*day).Sub(monday))

	assert.Equal(t, []customer.Stage{customer.StageTrial, customer.StageOnboarding, customer.StageActive,
		customer.StageAtRisk, customer.StageChurned, customer.StageActive}, r.fake.stages())
	assert.Equal(t, churned, r.fake.Records().Transitions[4].At)
	assert.Equal(t, []time.Time{churned.Add(90 * day)}, sendTimes(r.fake, "win-back-1"))
	assert.Equal(t, []time.Time{churned.Add(180 * day)}, sendTimes(r.fake, "win-back-2"))
	assert.Contains(t, r.fake.Records().Transitions[5].Reason, "reactivated")
}

func TestUnsubscribeCancelsPendingSendsAtOnce(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("u1")).event(12*time.Hour, "u", "unsubscribe")
	r.run(r.input("u1"), 10*day)

	require.NotNil(t, r.result, "the journey ends")
	assert.Equal(t, customer.StageUnsubscribed, r.result.Stage)
	assert.Equal(t, []string{"welcome:welcome"}, r.fake.templatesSent(), "tips (due day 1) never sent")
	assert.Equal(t, "unsubscribed", r.fake.Records().Suppressed["u1@example.com"])
	assert.True(t, monday.Add(12*time.Hour).Equal(r.ended), "ends when the unsubscribe arrives, not at the next step (ended %s)", r.ended)
}

func TestBounceStopsMailButJourneyGoesOn(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("b1")).event(12*time.Hour, "b", "email_bounced")
	r.run(r.input("b1"), 10*day)
	assert.Equal(t, []string{"welcome:welcome"}, r.fake.templatesSent())
	assert.Equal(t, customer.StageNurture, r.view.Stage)
	assert.Equal(t, "bounced", r.fake.Records().Suppressed["b1@example.com"])
}

func TestDuplicateEventCountsOnce(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("d1")).
		event(day, "same-id", "pricing_viewed").
		event(day+time.Hour, "same-id", "pricing_viewed").
		event(2*day, "same-id", "pricing_viewed")
	r.run(r.input("d1"), 2*day+time.Hour)
	assert.Equal(t, 13, r.view.Score, "fit 3 + pricing_viewed 10, once")
}

func TestDuplicateEventAcrossContinueAsNewIsCaughtByTheCRMLedger(t *testing.T) {
	// The trial→nurture boundary continues-as-new between the two copies; the
	// in-memory window is carried, and the CRM event log catches the rest.
	r := newJourneyRun(t, monday).signup(0, coldLead("d2")).
		event(day, "dup", "pricing_viewed").
		event(5*day, "dup", "pricing_viewed")
	r.run(r.input("d2"), 6*day)
	assert.Greater(t, r.runs, 1)
	assert.Equal(t, 13, r.view.Score)
}

func TestStaleDealLostIsIgnored(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, hotLead("o1")).
		event(2*day, "e1", "pricing_viewed").
		// happened before the handoff, arrives after it
		at(2*day+time.Hour, SignalEvent, Event{ID: "old", Type: "deal_lost", At: monday.Add(12 * time.Hour)})
	r.run(r.input("o1"), 2*day+2*time.Hour)
	assert.Equal(t, customer.StageSales, r.view.Stage)
	assert.Empty(t, r.fake.Records().HandoffStatuses[r.fake.Records().Handoffs[0].Key])
}

func TestOutOfOrderBatchAppliedInEventTimeOrder(t *testing.T) {
	// One signal carrying a batch in reverse order: deal_won happened
	// after sales_accepted, and both after the handoff.
	batch := []Event{
		{ID: "won", Type: "deal_won", At: monday.Add(day + 3*time.Hour)},
		{ID: "acc", Type: "sales_accepted", At: monday.Add(day + 2*time.Hour)},
	}
	r := newJourneyRun(t, monday).signup(0, hotLead("o2")).event(day, "e1", "pricing_viewed").
		at(day+4*time.Hour, SignalEvent, batch)
	r.run(r.input("o2"), 2*day)
	assert.Equal(t, []string{"accepted", "won"}, r.fake.Records().HandoffStatuses[r.fake.Records().Handoffs[0].Key])
	assert.Equal(t, customer.StageOnboarding, r.view.Stage)
}

func TestEventBeforeSignupWaitsInPending(t *testing.T) {
	r := newJourneyRun(t, monday).event(0, "early", "pricing_viewed").signup(day, coldLead("e1"))
	r.run(r.input("e1"), 2*day)
	assert.Equal(t, []customer.Stage{customer.StageTrial}, r.fake.stages())
	assert.Equal(t, 13, r.view.Score, "the early event's points count")
	assert.Equal(t, []time.Time{monday.Add(day)}, sendTimes(r.fake, "welcome"))
}

func TestPendingJourneyWithoutSignupEnds(t *testing.T) {
	r := newJourneyRun(t, monday).event(0, "lonely", "pricing_viewed")
	r.run(r.input("e2"), 40*day)
	require.NotNil(t, r.result)
	assert.Equal(t, customer.StagePending, r.result.Stage)
	assert.Empty(t, r.fake.sends())
}

func TestRepeatedSignupIsNotASecondJourney(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("s1")).signup(time.Hour, coldLead("s1"))
	r.run(r.input("s1"), 2*time.Hour)
	assert.Equal(t, []customer.Stage{customer.StageTrial}, r.fake.stages())
	assert.Equal(t, []string{"welcome:welcome"}, r.fake.templatesSent())
}

func TestQuietHoursAcrossDSTChange(t *testing.T) {
	// Saturday 28 March 2026, 21:30 in Berlin (CET, UTC+1): inside quiet
	// hours. Clocks go forward that night; 08:00 on Sunday is CEST (UTC+2).
	start := time.Date(2026, 3, 28, 20, 30, 0, 0, time.UTC)
	s := coldLead("q1")
	s.TimeZone = "Europe/Berlin"
	r := newJourneyRun(t, start).signup(0, s)
	r.run(r.input("q1"), 12*time.Hour)
	assert.Equal(t, []time.Time{time.Date(2026, 3, 29, 6, 0, 0, 0, time.UTC)}, sendTimes(r.fake, "welcome"))
}

func TestHolidayGreetingOnLocalNewYearInTwoZones(t *testing.T) {
	for zone, want := range map[string]time.Time{
		"Asia/Tokyo":          time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		"America/Los_Angeles": time.Date(2027, 1, 1, 17, 0, 0, 0, time.UTC),
	} {
		t.Run(zone, func(t *testing.T) {
			start := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
			s := coldLead("hol")
			s.TimeZone = zone
			r := newJourneyRun(t, start).signup(0, s).event(time.Hour, "buy", "purchase")
			for i := 1; i <= 4; i++ {
				r.event(time.Duration(i)*20*day, "login-"+string(rune('0'+i)), "login")
			}
			r.run(r.input("hol"), 70*day)
			got := sendTimes(r.fake, "holiday-new_year")
			require.Equal(t, []time.Time{want}, got)
			local := got[0].In(mustLoc(t, zone))
			assert.Equal(t, "2027-01-01 09:00", local.Format("2006-01-02 15:04"))
		})
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestThreeYearsActiveStaysBounded(t *testing.T) {
	r := bought(t, "y3")
	for i := 1; i*20 < 3*365; i++ {
		r.event(time.Duration(i)*20*day, "login-"+itoa(i), "login")
	}
	// The test environment does not count history; Temporal's own
	// suggestion stands in for it every 60 days.
	r.suggestContinueAsNewEvery = 60 * day
	r.run(r.input("y3"), 3*365*day)

	assert.Equal(t, customer.StageActive, r.view.Stage)
	assert.Greater(t, r.runs, 15, "continues-as-new when suggested")
	for i, n := range r.carried {
		assert.Less(t, n, 16*1024, "state carried by continue-as-new %d", i)
	}
	// Holidays: 1 Jan 2027, 2028, 2029 — once each, however many runs.
	assert.Len(t, sendTimes(r.fake, "holiday-new_year"), 3)
	for key, n := range r.fake.Records().SendAttempts {
		assert.Equal(t, 1, n, "send key %s requested more than once", key)
	}
	asks := 0
	for _, s := range r.fake.sends() {
		if len(s.Step) > 4 && s.Step[:4] == "ask-" {
			asks++
		}
	}
	assert.GreaterOrEqual(t, asks, 10, "a review/referral ask every 90 days")
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestEraseDeletesAndEnds(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("x1")).event(2*day, "x", "erase")
	r.run(r.input("x1"), 10*day)
	require.NotNil(t, r.result)
	assert.Equal(t, customer.StageErased, r.result.Stage)
	assert.Equal(t, []string{"x1"}, r.fake.Records().Erased)
	for _, e := range r.view.Timeline {
		assert.NotContains(t, e.Detail, "x1@example.com")
	}
}

func TestUnknownAndMalformedEventsAreRecordedNotFatal(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("m1")).
		event(time.Hour, "u1", "telepathy_detected").
		at(2*time.Hour, SignalEvent, map[string]any{"id": 42, "type": []int{1}}).
		at(3*time.Hour, SignalEvent, Event{ID: "", Type: "login"}).
		event(4*time.Hour, "ok", "pricing_viewed")
	r.run(r.input("m1"), 5*time.Hour)
	assert.Equal(t, 13, r.view.Score, "the journey goes on and scores the good event")
	kinds := map[string]int{}
	for _, e := range r.view.Timeline {
		kinds[e.Kind]++
	}
	assert.Equal(t, 1, kinds["ignored"], "unknown type recorded and ignored")
	assert.Equal(t, 2, kinds["rejected"], "malformed payload and missing id rejected with a reason")
	assert.True(t, r.fake.eventLogged("u1"), "unknown event still written to the CRM event log")
}

func TestBehaviourScoreDecaysWithoutEngagement(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("dc")).event(day, "pv", "pricing_viewed")
	r.run(r.input("dc"), day+15*day)
	assert.Equal(t, 0, r.view.BehaviourScore, "10 points, -5 per week without engagement")
}
func v2Campaign(t *testing.T) *campaign.Campaign {
	// v2 changes the first nurture email to the offer.
	v2, err := campaign.LoadFile("testdata/test-campaign.yaml")
	require.NoError(t, err)
	v2.Version = "v2"
	v2.Nurture.Steps[0].Template = "offer"
	v2.Nurture.Steps[0].Variants = nil
	return v2
}

func TestNewJourneysStartOnTheLatestCampaignVersion(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("nv"))
	require.NoError(t, r.fake.reg.Add(v2Campaign(t)))
	r.run(r.input("nv"), 4*day)
	for _, s := range r.fake.sends() {
		assert.Contains(t, s.Key, "@v2/", s.Step)
	}
	assert.Equal(t, []string{"n1:offer"}, filterPrefix(r.fake.templatesSent(), "n1:"))
}

func TestRunningJourneyKeepsItsVersionWithinAStage(t *testing.T) {
	// v1 only at the start; v2 arrives during the trial (before the run that
	// continues-as-new at the trial -> nurture boundary loads the campaign).
	r := newJourneyRun(t, monday).signup(0, coldLead("v2"))
	v2 := v2Campaign(t)
	r.onRun = func(now time.Time) {
		if now.After(monday.Add(12 * time.Hour)) {
			require.NoError(t, r.fake.reg.Add(v2))
		}
	}
	r.run(r.input("v2"), 4*day)

	got := map[string]string{}
	for _, s := range r.fake.sends() {
		got[s.Step] = s.Key
	}
	assert.Contains(t, got["welcome"], "@v1/", "trial started on v1")
	assert.Contains(t, got["tips"], "@v1/", "within the trial the journey keeps v1")
	assert.Contains(t, got["n1"], "@v2/", "nurture, after the boundary, runs on v2")
	assert.Equal(t, []string{"n1:offer"}, filterPrefix(r.fake.templatesSent(), "n1:"), "v2's nurture content")
}

func filterPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
			out = append(out, s)
		}
	}
	return out
}
