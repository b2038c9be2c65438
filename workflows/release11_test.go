package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// Release 1.1: advocacy and feedback, reminders, one contact policy. The
// journey runs in Temporal's time-skipping test environment against the
// in-memory CRM and mailer.

// eventWith scripts an event with properties.
func (r *journeyRun) eventWith(d time.Duration, id, typ string, props map[string]any) *journeyRun {
	return r.at(d, SignalEvent, Event{ID: id, Type: typ, At: r.start.Add(d), Properties: props})
}

// loggingIn keeps a customer active: a login every 20 days from `from` to
// `to` (days since the start).
func (r *journeyRun) loggingIn(id string, from, to int) *journeyRun {
	for d := from; d <= to; d += 20 {
		r.event(time.Duration(d)*day, fmt.Sprintf("%s-login-%d", id, d), customer.EventLogin)
	}
	return r
}

// The active customer of `bought` is asked every 90 days (the test
// campaign alternates review and referral) from day 32+90.
const firstAsk = 32 + 90

func TestAdvocacyEndsTheAsksThatNoLongerFit(t *testing.T) {
	r := bought(t, "ad1").loggingIn("ad1", 40, 300).
		event(60*day, "rev", customer.EventReviewLeft).
		event((firstAsk+50)*day, "ref", customer.EventReferralMade)
	r.run(r.input("ad1"), 320*day)

	asks := filterPrefix(r.fake.templatesSent(), "ask-")
	assert.Equal(t, []string{"ask-1:referral"}, asks,
		"the review ask ended with the review; the referral ask went out once, then ended with the referral")
	assert.Equal(t, []time.Time{monday.Add(firstAsk * day)}, sendTimes(r.fake, "ask-1"))
	assert.Contains(t, r.fake.Records().Tags["ad1"], customer.TagAdvocate, "advocates are tagged for segments")
}

func TestPromoterIsAskedAtOnce(t *testing.T) {
	r := bought(t, "pr1").loggingIn("pr1", 40, 200).
		eventWith(50*day, "nps", customer.EventNPSAnswered, map[string]any{"score": 10.0})
	r.run(r.input("pr1"), 60*day)

	assert.Equal(t, []time.Time{monday.Add(50 * day)}, sendTimes(r.fake, "ask-1"), "a promoter gets the ask when they answer")
	assert.Equal(t, []string{"ask-1:review"}, filterPrefix(r.fake.templatesSent(), "ask-"))
	tags := r.fake.Records().Tags["pr1"]
	assert.Contains(t, tags, customer.TagAdvocate)
	assert.Contains(t, tags, customer.TagPromoter)
	assert.Empty(t, r.fake.Records().Tasks)
}

func TestDetractorOpensATaskAndStopsTheAsksUntilALaterAnswer(t *testing.T) {
	r := bought(t, "de1").loggingIn("de1", 40, 400).
		eventWith(50*day, "nps-1", customer.EventNPSAnswered, map[string]any{"score": 3.0}).
		eventWith(250*day, "nps-2", customer.EventNPSAnswered, map[string]any{"score": "8"})
	r.run(r.input("de1"), 360*day)

	tasks := r.fake.Records().Tasks
	require.Len(t, tasks, 1, "one task for the detractor's answer, none for the passive one")
	assert.Equal(t, customer.TaskDetractorFollowUp, tasks[0].Kind)
	assert.Equal(t, "Call Cole: NPS 3", tasks[0].Title)
	assert.Equal(t, "success@test.example", tasks[0].OwnerEmail, "the customer's delivery owner")
	assert.Equal(t, monday.Add(52*day), tasks[0].DueAt)
	assert.Equal(t, []time.Time{monday.Add(50 * day)}, sendTimes(r.fake, "detractor-alert-1"), "the owner gets a notice")

	// Asks are due every 90 days from day 122: none while a detractor; the
	// passive answer on day 250 lets the next one (due from day 122 on)
	// go out at once.
	assert.Equal(t, []time.Time{monday.Add(250 * day)}, sendTimes(r.fake, "ask-1"))
	assert.Equal(t, []time.Time{monday.Add(340 * day)}, sendTimes(r.fake, "ask-2"))
	tags := r.fake.Records().Tags["de1"]
	assert.NotContains(t, tags, customer.TagDetractor, "the later answer is not a detractor's")
}

func TestRemindersFollowADateMovedTwiceInLocalTime(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	lead := coldLead("rm1")
	lead.TimeZone = "Europe/Berlin"
	r := newJourneyRun(t, monday).signup(0, lead).event(day, "rm1-buy", customer.EventPurchase).
		eventWith(2*day, "date-1", customer.EventProfileUpdated, map[string]any{"renewal_date": "2026-04-20"}).
		eventWith(25*day, "date-2", customer.EventProfileUpdated, map[string]any{"renewal_date": "2026-05-20"}).
		eventWith(40*day, "date-3", customer.EventProfileUpdated, map[string]any{"renewal_date": "2026-06-30"})
	r.run(r.input("rm1"), 130*day)

	local := func(s string) time.Time {
		at, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		require.NoError(t, err)
		return at.UTC()
	}
	assert.Equal(t, []time.Time{local("2026-03-21 09:00"), local("2026-05-31 09:00")}, sendTimes(r.fake, "reminder-renewal-30d"),
		"30 days before the first date (sent before it moved), none for the second (moved away before it was due), 30 days before the third; 09:00 Berlin across the DST change")
	assert.Equal(t, []time.Time{local("2026-06-23 10:00")}, sendTimes(r.fake, "reminder-renewal-7d"),
		"a week before the last date only, at the reminder's own time of day")
	assert.True(t, timelineHas(r.view, "reminder", "moved from 2026-05-20 to 2026-06-30"), "%v", r.view.Timeline)
}

func TestReminderFromAnEventIsCancelledWhenTheDateIsCleared(t *testing.T) {
	r := bought(t, "wb1").
		eventWith(20*day, "reg-1", "webinar_registered", map[string]any{"starts_at": "2026-03-25T15:00:00Z"}).
		eventWith(21*day, "reg-1-cancel", "webinar_registered", map[string]any{"starts_at": nil}).
		eventWith(30*day, "reg-2", "webinar_registered", map[string]any{"starts_at": "2026-04-05T15:00:00Z"}).
		eventWith(31*day, "bad", "webinar_registered", map[string]any{"starts_at": "next tuesday"})
	r.run(r.input("wb1"), 40*day)

	assert.Equal(t, []time.Time{time.Date(2026, 4, 5, 14, 0, 0, 0, time.UTC)}, sendTimes(r.fake, "reminder-webinar-1h"),
		"the cancelled registration reminds nobody; the second reminds an hour before")
	assert.False(t, r.fake.eventLogged("reg-1") && !r.fake.eventLogged("reg-2"), "the campaign's own event type is not ignored")
	assert.True(t, timelineHas(r.view, "ignored", "starts_at"), "a value that is not a date is noted: %v", r.view.Timeline)
}

// policyCampaign is the test campaign as version v2 with the contact policy
// changed by edit.
func policyCampaign(t *testing.T, edit func(c *campaign.Campaign)) *campaign.Campaign {
	c, err := campaign.LoadFile("testdata/test-campaign.yaml")
	require.NoError(t, err)
	c.Version = "v2"
	edit(c)
	require.NoError(t, c.Validate())
	return c
}

func TestMinimumGapDefersTheNextMarketingEmail(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("gap1"))
	require.NoError(t, r.fake.reg.Add(policyCampaign(t, func(c *campaign.Campaign) {
		c.Sending.MinGap = campaign.Duration(30 * time.Hour)
	})))
	r.run(r.input("gap1"), 2*day)

	assert.Equal(t, []time.Time{monday}, sendTimes(r.fake, "welcome"))
	assert.Equal(t, []time.Time{monday.Add(30 * time.Hour)}, sendTimes(r.fake, "tips"), "due a day after the welcome; the gap is 30h")
	assert.True(t, timelineHas(r.view, "deferred", campaign.ReasonMinGap), "%v", r.view.Timeline)
}

func TestHolidayGreetingWaitsForTheEndOfQuietHours(t *testing.T) {
	nov := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	r := newJourneyRun(t, nov).signup(0, coldLead("hq1")).event(day, "hq1-buy", customer.EventPurchase).loggingIn("hq1", 40, 80)
	require.NoError(t, r.fake.reg.Add(policyCampaign(t, func(c *campaign.Campaign) {
		c.Active.Holidays[0].Cron = "0 22 1 1 *" // 22:00, inside quiet hours 21:00–08:00
	})))
	r.run(r.input("hq1"), 70*day)

	assert.Equal(t, []time.Time{time.Date(2027, 1, 2, 8, 0, 0, 0, time.UTC)}, sendTimes(r.fake, "holiday-new_year"))
	assert.True(t, timelineHas(r.view, "deferred", campaign.ReasonQuietHours) || r.runs > 1, "%v", r.view.Timeline)
}

func TestEmailTheLedgerDefersIsSentWhenTheLedgerAllows(t *testing.T) {
	r := newJourneyRun(t, monday).signup(0, coldLead("ld1"))
	var policies []*activities.ContactPolicy
	deferred := false
	r.fake.SetSendHook(func(now time.Time, in activities.SendEmailInput) *inmemory.Outcome {
		policies = append(policies, in.Policy)
		if in.Step == "tips" && !deferred {
			// A broadcast mailed the customer minutes ago.
			deferred = true
			return &inmemory.Outcome{Result: activities.SendEmailResult{
				Status: activities.SendDeferred, DeferredUntil: now.Add(5 * time.Hour), Reason: campaign.ReasonMinGap}}
		}
		return nil
	})
	r.run(r.input("ld1"), 2*day)

	assert.Equal(t, []time.Time{monday.Add(day + 5*time.Hour)}, sendTimes(r.fake, "tips"), "sent again when the ledger allows, once")
	assert.True(t, timelineHas(r.view, "deferred", "the send ledger holds it"), "%v", r.view.Timeline)
	require.NotEmpty(t, policies)
	assert.Equal(t, &activities.ContactPolicy{CapMax: 3, CapWindow: 7 * day}, policies[0], "the campaign's cap goes to the ledger with every marketing email")
}

func TestEmailTheLedgerDefersPastTheStageIsNotSent(t *testing.T) {
	// The last trial email is held past the end of the trial: the customer
	// is in nurture by then, and a trial email no longer fits.
	r := newJourneyRun(t, monday).signup(0, coldLead("ld2"))
	r.fake.SetSendHook(func(now time.Time, in activities.SendEmailInput) *inmemory.Outcome {
		if in.Step == "tips" {
			return &inmemory.Outcome{Result: activities.SendEmailResult{
				Status: activities.SendDeferred, DeferredUntil: now.Add(3 * day), Reason: campaign.ReasonFrequencyCap}}
		}
		return nil
	})
	r.run(r.input("ld2"), 6*day)
	assert.Empty(t, sendTimes(r.fake, "tips"))
	assert.Equal(t, []time.Time{monday.Add(3 * day)}, sendTimes(r.fake, "n1"), "nurture starts on time")
}
