package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// The journey's rules as plain logic: a state, an event, the campaign and
// the clock in; the new state and the CRM writes out. No Temporal here.

func testCampaign(t *testing.T) *campaign.Campaign {
	t.Helper()
	c, err := campaign.LoadFile("testdata/test-campaign.yaml")
	require.NoError(t, err)
	return c
}

// leadIn returns the state of a cold engineer's journey in stage, entered
// at monday, with a fit of 3.
func leadIn(stage customer.Stage) *JourneyState {
	return &JourneyState{
		CustomerID: "c1", Journey: "jtest", CampaignID: "test-lifecycle", CampaignVersion: "v1",
		Contact:   customer.Profile{CustomerID: "c1", Email: "c1@example.com", FirstName: "Cole", Role: "engineer", CompanySize: 10, LeadSource: "cold"},
		HasSignup: true, Stage: stage, StageSeq: 1, StageEnteredAt: monday, EntryDone: true, Fit: 3, Epoch: monday, TimeScale: 1,
	}
}

func ops(writes []activities.CRMWrite) []string {
	out := make([]string, len(writes))
	for i, w := range writes {
		out[i] = w.Op()
	}
	return out
}

func TestSignupStartsTheTrialWithFitScore(t *testing.T) {
	s := &JourneyState{CustomerID: "h1", Journey: "jtest", CampaignID: "test-lifecycle", CampaignVersion: "v1",
		Stage: customer.StagePending, Epoch: monday, TimeScale: 1}
	r := rules{s: s, c: testCampaign(t), now: monday}
	r.signup(hotLead("h1"))

	assert.Equal(t, customer.StageTrial, s.Stage)
	assert.Equal(t, 50, s.Fit, "referral 25 + cto 10 + 1,500 employees 15")
	assert.Equal(t, []string{"contact", "transition", "score"}, ops(r.writes))
	tr := r.writes[1].Transition
	assert.Equal(t, "h1/jtest/transition/1", tr.Key)
	assert.Equal(t, "jtest", tr.Journey)
	assert.Equal(t, 1, tr.StageSeq)
	assert.Equal(t, 50, r.writes[2].Score.Score)
	assert.Equal(t, "h1/jtest/score/1", r.writes[2].Score.Key)
}

func TestEngagementScoresALead(t *testing.T) {
	s := leadIn(customer.StageTrial)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{{ID: "p1", Type: "pricing_viewed", At: monday.Add(time.Hour)}})

	assert.Equal(t, 10, s.Behaviour)
	assert.Equal(t, 13, s.score())
	assert.Equal(t, map[string]int{"pricing_viewed": 10}, s.Contributions)
	assert.Equal(t, []string{"score"}, ops(r.writes), "the new score goes to the CRM")
	assert.Equal(t, 13, r.writes[0].Score.Score)
}

func TestLateEventCountsWithTheDecayItWouldHaveHad(t *testing.T) {
	// Decay: 5 points a week. A pricing view (10 points) that happened
	// eight days ago counts 5.
	s := leadIn(customer.StageTrial)
	s.StageEnteredAt = monday.Add(-30 * day)
	now := monday
	r := rules{s: s, c: testCampaign(t), now: now}
	r.events([]Event{{ID: "old", Type: "pricing_viewed", At: now.Add(-8 * day)}})
	assert.Equal(t, 5, s.Behaviour)
}

func TestThresholdHandsTheLeadToSales(t *testing.T) {
	s := leadIn(customer.StageNurture)
	s.Fit = 50
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{{ID: "p1", Type: "pricing_viewed", At: monday.Add(time.Hour)}})

	assert.Equal(t, customer.StageSales, s.Stage)
	assert.Equal(t, 2, s.StageSeq)
	assert.False(t, s.EntryDone, "the sales entry (handoff) is still to do")
	assert.Equal(t, []string{"transition", "score"}, ops(r.writes))
	assert.Equal(t, "score 60 reached threshold 60", r.writes[0].Transition.Reason)

	// The entry: the handoff with its reasons and the owner's notice.
	r = rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.enter()
	require.Equal(t, []string{"handoff"}, ops(r.writes))
	h := r.writes[0].Handoff
	assert.Equal(t, "c1/jtest/handoff/2", h.Key)
	assert.Equal(t, 60, h.Score)
	assert.Equal(t, "sales@test.example", h.OwnerEmail)
	assert.Equal(t, monday.Add(25*time.Hour), h.SLADue)
	assert.Equal(t, []notice{{Step: "sales-handoff", Template: "handoff", To: "sales@test.example"}}, r.notices)
	assert.True(t, s.EntryDone)
}

func TestPurchaseMovesALeadToOnboarding(t *testing.T) {
	s := leadIn(customer.StageNurture)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(day)}
	r.events([]Event{{ID: "buy", Type: "purchase", At: monday.Add(day)}})
	assert.Equal(t, customer.StageOnboarding, s.Stage)
	assert.Equal(t, []string{"transition"}, ops(r.writes))
}

func TestLostDealGoesBackToNurtureWithoutBehaviourPoints(t *testing.T) {
	s := leadIn(customer.StageSales)
	s.Behaviour, s.Contributions, s.HandoffKey = 40, map[string]int{"demo_requested": 30}, "c1/jtest/handoff/1"
	r := rules{s: s, c: testCampaign(t), now: monday.Add(day)}
	r.events([]Event{{ID: "lost", Type: "deal_lost", At: monday.Add(day)}})

	assert.Equal(t, customer.StageNurture, s.Stage)
	assert.Zero(t, s.Behaviour)
	assert.Equal(t, 3, s.score(), "the fit stays")
	assert.Equal(t, []string{"handoff_status", "transition", "score"}, ops(r.writes))
	assert.Equal(t, "lost", r.writes[0].HandoffStatus.Status)
}

func TestLifecycleEventOlderThanTheStageIsIgnored(t *testing.T) {
	s := leadIn(customer.StageSales)
	s.HandoffKey = "c1/jtest/handoff/1"
	r := rules{s: s, c: testCampaign(t), now: monday.Add(day)}
	r.events([]Event{{ID: "lost", Type: "deal_lost", At: monday.Add(-time.Hour)}})
	assert.Equal(t, customer.StageSales, s.Stage)
	assert.Empty(t, r.writes)
}

func TestUnsubscribeSuppressesAndEndsTheBatch(t *testing.T) {
	s := leadIn(customer.StageTrial)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{
		{ID: "u", Type: "unsubscribe", At: monday.Add(time.Hour)},
		{ID: "p", Type: "pricing_viewed", At: monday.Add(2 * time.Hour)},
	})
	assert.Equal(t, customer.StageUnsubscribed, s.Stage)
	assert.Zero(t, s.Behaviour, "nothing after the unsubscribe is applied")
	assert.Equal(t, []string{"suppress", "transition"}, ops(r.writes))
	assert.Equal(t, "unsubscribed", r.writes[0].Suppress.Reason)
}

func TestEraseForgetsTheContact(t *testing.T) {
	s := leadIn(customer.StageNurture)
	s.note(monday, "email", "send welcome to c1@example.com: sent")
	s.note(monday, "stage", "trial → nurture: trial period over")
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{{ID: "x", Type: "erase", At: monday.Add(time.Hour)}})

	assert.Equal(t, customer.StageErased, s.Stage)
	assert.Equal(t, customer.Profile{}, s.Contact)
	assert.Equal(t, []string{"erase"}, ops(r.writes), "the CRM's erase records its own stage change")
	for _, e := range s.Timeline {
		assert.NotContains(t, e.Detail, "c1@example.com")
	}
}

func TestBounceEventStopsMailButNotTheJourney(t *testing.T) {
	s := leadIn(customer.StageTrial)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{{ID: "b", Type: "email_bounced", At: monday.Add(time.Hour)}})
	assert.Equal(t, customer.StageTrial, s.Stage)
	assert.True(t, s.MailSuppressed)
	assert.Equal(t, []string{"suppress"}, ops(r.writes))
}

func TestActivityReactivatesAnAtRiskCustomer(t *testing.T) {
	s := leadIn(customer.StageAtRisk)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(day)}
	r.events([]Event{{ID: "l", Type: "login", At: monday.Add(day)}})
	assert.Equal(t, customer.StageActive, s.Stage)
	assert.Equal(t, monday.Add(day), s.LastActivityAt)
	assert.Equal(t, []string{"transition"}, ops(r.writes))
}

func TestDecayWritesTheLowerScore(t *testing.T) {
	s := leadIn(customer.StageNurture)
	s.Behaviour, s.LastEngagementAt = 12, monday
	r := rules{s: s, c: testCampaign(t), now: monday.Add(15 * day)}
	r.decay()
	assert.Equal(t, 2, s.Behaviour, "two weeks without engagement: 5 points each")
	assert.Equal(t, []string{"score"}, ops(r.writes))
	assert.Equal(t, 5, r.writes[0].Score.Score)
}

func TestTagsFromPropertiesAndCampaignRules(t *testing.T) {
	s := leadIn(customer.StageTrial)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	r.events([]Event{
		{ID: "t1", Type: "tags_changed", At: monday.Add(time.Minute), Properties: map[string]any{"tags": []any{"vip", "product:analytics"}}},
		{ID: "w1", Type: "webinar_attended", At: monday.Add(2 * time.Minute)},
		{ID: "t2", Type: "login", At: monday.Add(3 * time.Minute), Properties: map[string]any{"remove_tags": "vip"}},
	})
	assert.Equal(t, []string{"events", "product:analytics", "webinar-2026"}, s.Tags)
	var tagWrites []activities.TagsInput
	for _, w := range r.writes {
		if w.Tags != nil {
			tagWrites = append(tagWrites, *w.Tags)
		}
	}
	require.Len(t, tagWrites, 3, "one CRM write per change, in order")
	assert.Equal(t, []string{"vip", "product:analytics"}, tagWrites[0].Add)
	assert.Equal(t, []string{"webinar-2026", "events"}, tagWrites[1].Add, "the campaign's rule for webinar_attended")
	assert.Equal(t, []string{"vip"}, tagWrites[2].Remove)

	// Nothing new: no write. Bad tags (a signal that bypassed the API):
	// noted, not applied.
	r.writes = nil
	r.events([]Event{
		{ID: "t3", Type: "tags_changed", At: monday.Add(4 * time.Minute), Properties: map[string]any{"tags": "events"}},
		{ID: "t4", Type: "tags_changed", At: monday.Add(5 * time.Minute), Properties: map[string]any{"tags": []any{"Not OK"}}},
	})
	assert.Empty(t, r.writes)
	assert.Equal(t, []string{"events", "product:analytics", "webinar-2026"}, s.Tags)
	assert.Contains(t, s.Timeline[len(s.Timeline)-1].Detail, "tags ignored")

	// An erase forgets them.
	r.events([]Event{{ID: "x", Type: "erase", At: monday.Add(6 * time.Minute)}})
	assert.Empty(t, s.Tags)
}

func TestTagsBeforeTheSignupReachTheCRMWithTheContact(t *testing.T) {
	s := &JourneyState{CustomerID: "c1", Journey: "jtest", Stage: customer.StagePending, StageEnteredAt: monday, Epoch: monday, TimeScale: 1}
	r := rules{s: s, c: testCampaign(t), now: monday}
	r.events([]Event{{ID: "t1", Type: "tags_changed", At: monday, Properties: map[string]any{"tags": []any{"vip"}}}})
	assert.Equal(t, []string{"vip"}, s.Tags)
	assert.NotContains(t, ops(r.writes), "tags", "no contact to tag yet")

	r.writes = nil
	r.signup(Signup{CustomerID: "c1", Email: "c1@example.com", At: monday})
	got := ops(r.writes)
	require.GreaterOrEqual(t, len(got), 2)
	assert.Equal(t, []string{"contact", "tags"}, got[:2], "the tags follow the new contact")
}

func TestATagChangeOfManyTagsIsWrittenInChunks(t *testing.T) {
	s := leadIn(customer.StageTrial)
	r := rules{s: s, c: testCampaign(t), now: monday.Add(time.Hour)}
	tags := make([]any, customer.MaxTagsPerChange)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%02d", i)
	}
	// 20 of its own plus the campaign's two for a webinar.
	r.events([]Event{{ID: "w", Type: "webinar_attended", At: monday.Add(time.Minute), Properties: map[string]any{"tags": tags}}})
	assert.Len(t, s.Tags, customer.MaxTagsPerChange+2)
	var n int
	for _, w := range r.writes {
		if w.Tags != nil {
			assert.LessOrEqual(t, len(w.Tags.Add), customer.MaxTagsPerChange)
			n += len(w.Tags.Add)
		}
	}
	assert.Equal(t, customer.MaxTagsPerChange+2, n)
}
