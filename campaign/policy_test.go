package campaign

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestScheduleAppliesEveryRuleUntilNoneMovesTheTime(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, berlin) }
	policy := Sending{
		QuietHours:   &QuietHours{Start: ClockTime{21, 0}, End: ClockTime{8, 0}},
		FrequencyCap: &FrequencyCap{Max: 2, Window: Duration(7 * 24 * time.Hour), OverCap: OverCapDelay},
		MinGap:       Duration(12 * time.Hour),
	}
	cases := []struct {
		name    string
		due     time.Time
		recent  []time.Time
		want    time.Time
		reasons []string
	}{
		{"nothing objects", at(10, 12, 0), nil, at(10, 12, 0), nil},
		{"quiet hours", at(10, 22, 0), nil, at(11, 8, 0), []string{ReasonQuietHours}},
		{"gap", at(10, 12, 0), []time.Time{at(10, 9, 0)}, at(10, 21, 0).Add(0), nil},
		{"cap", at(10, 12, 0), []time.Time{at(5, 10, 0), at(6, 10, 0)}, at(12, 10, 0), []string{ReasonFrequencyCap}},
	}
	// The gap lands at 21:00, inside quiet hours: the next morning.
	cases[2].want, cases[2].reasons = at(11, 8, 0), []string{ReasonMinGap, ReasonQuietHours}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := policy.Schedule(tc.due, berlin, tc.recent)
			assert.False(t, d.Drop)
			assert.Equal(t, tc.want, d.At.In(berlin))
			assert.Equal(t, tc.reasons, d.Reasons)
			assert.Equal(t, len(tc.reasons) > 0, d.Deferred(tc.due))
		})
	}

	drop := policy
	drop.FrequencyCap = &FrequencyCap{Max: 1, Window: Duration(7 * 24 * time.Hour), OverCap: OverCapDrop}
	d := drop.Schedule(at(10, 12, 0), berlin, []time.Time{at(9, 10, 0)})
	assert.True(t, d.Drop, "over the cap with over_cap drop")
	assert.Equal(t, []string{ReasonFrequencyCap}, d.Reasons)

	var none Sending
	assert.Equal(t, Decision{At: at(10, 23, 0)}, none.Schedule(at(10, 23, 0), berlin, []time.Time{at(10, 22, 0)}), "no policy, no rule")
}

func TestReminderDueInLocalTime(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	week := Duration(-7 * 24 * time.Hour)
	cases := []struct {
		name  string
		r     Reminder
		value string
		want  time.Time
	}{
		{"date at the default 09:00", Reminder{Offset: week}, "2026-04-03", time.Date(2026, 3, 27, 9, 0, 0, 0, berlin)},
		// 29 March 2026 is the spring-forward day: still 09:00 local.
		{"date across DST at its own time", Reminder{Offset: week, At: &ClockTime{10, 30}}, "2026-04-05", time.Date(2026, 3, 29, 10, 30, 0, 0, berlin)},
		{"time, no at: the instant minus the offset", Reminder{Offset: Duration(-time.Hour)}, "2026-05-14T16:00:00Z", time.Date(2026, 5, 14, 15, 0, 0, 0, time.UTC)},
		{"time with at: that day's local time", Reminder{Offset: Duration(-24 * time.Hour), At: &ClockTime{8, 0}}, "2026-05-14T16:00:00Z", time.Date(2026, 5, 13, 8, 0, 0, 0, berlin)},
		{"after the date", Reminder{Offset: Duration(36 * time.Hour)}, "2026-05-14", time.Date(2026, 5, 15, 21, 0, 0, 0, berlin)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.Due(tc.value, berlin)
			assert.NoError(t, err)
			assert.True(t, tc.want.Equal(got), "want %s, got %s", tc.want, got.In(berlin))
		})
	}
	_, err := Reminder{}.Due("next tuesday", berlin)
	assert.ErrorIs(t, err, ErrBadDate)
	assert.Equal(t, "Friday 3 April 2026", Reminder{}.ShowDate("2026-04-03", berlin))
	assert.Equal(t, "Thursday 14 May 2026, 18:00 CEST", Reminder{}.ShowDate("2026-05-14T16:00:00Z", berlin))
}

func TestNPSAnswerBands(t *testing.T) {
	var a Advocacy // the defaults: nps_answered, property score, 9 and 6
	for _, tc := range []struct {
		v    any
		band NPSBand
		ok   bool
	}{
		{10.0, NPSPromoter, true}, {9, NPSPromoter, true}, {"8", NPSPassive, true}, {7.0, NPSPassive, true},
		{6.0, NPSDetractor, true}, {0.0, NPSDetractor, true},
		{11.0, "", false}, {-1.0, "", false}, {7.5, "", false}, {"ten", "", false}, {nil, "", false}, {true, "", false},
	} {
		_, band, ok := a.NPSAnswer("nps_answered", map[string]any{"score": tc.v})
		assert.Equal(t, tc.ok, ok, "%v", tc.v)
		assert.Equal(t, tc.band, band, "%v", tc.v)
	}
	_, _, ok := a.NPSAnswer("login", map[string]any{"score": 10.0})
	assert.False(t, ok, "only the NPS event")
}
