package campaign

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadLocation(t *testing.T) {
	for _, bad := range []string{"", "Local", "Mars/Base", "europe/berlin "} {
		_, err := LoadLocation(bad)
		assert.Error(t, err, bad)
	}
	a, err := LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	b, err := LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	assert.Same(t, a, b, "cached")
	assert.Equal(t, "Europe/Berlin", a.String())
	u, err := LoadLocation("UTC")
	require.NoError(t, err)
	assert.Equal(t, "UTC", u.String())
}

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func TestQuietHoursNil(t *testing.T) {
	var q *QuietHours
	now := utc(2026, 1, 1, 23, 0)
	assert.Equal(t, now, q.NextAllowed(now, time.UTC))
}

func TestQuietHoursWrapBerlin(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	q := &QuietHours{Start: ClockTime{21, 0}, End: ClockTime{8, 0}}
	at := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, berlin) }
	cases := []struct {
		name    string
		in, out time.Time
	}{
		{"evening moves to next morning", at(2026, 1, 15, 22, 30), at(2026, 1, 16, 8, 0)},
		{"night moves to same morning", at(2026, 1, 15, 3, 0), at(2026, 1, 15, 8, 0)},
		{"day is allowed", at(2026, 1, 15, 12, 0), at(2026, 1, 15, 12, 0)},
		{"start is quiet", at(2026, 1, 15, 21, 0), at(2026, 1, 16, 8, 0)},
		{"end is allowed", at(2026, 1, 15, 8, 0), at(2026, 1, 15, 8, 0)},
		{"just before end", at(2026, 1, 15, 7, 59).Add(59 * time.Second), at(2026, 1, 15, 8, 0)},
		{"just before start", at(2026, 1, 15, 20, 59), at(2026, 1, 15, 20, 59)},
		{"month end", at(2026, 1, 31, 23, 0), at(2026, 2, 1, 8, 0)},
		// Spring forward (29 March 2026, 02:00 CET -> 03:00 CEST): the night is an hour shorter.
		{"spring forward night", at(2026, 3, 28, 22, 0), utc(2026, 3, 29, 6, 0)},
		// Fall back (25 October 2026, 03:00 CEST -> 02:00 CET): the night is an hour longer.
		{"fall back night", at(2026, 10, 24, 22, 0), utc(2026, 10, 25, 7, 0)},
	}
	for _, tc := range cases {
		got := q.NextAllowed(tc.in, berlin)
		assert.True(t, tc.out.Equal(got), "%s: got %s, want %s", tc.name, got, tc.out.In(berlin))
		// The input's own location does not matter.
		got = q.NextAllowed(tc.in.UTC(), berlin)
		assert.True(t, tc.out.Equal(got), "%s (UTC input): got %s", tc.name, got)
	}
	assert.Equal(t, 8, q.NextAllowed(at(2026, 3, 28, 22, 0), berlin).In(berlin).Hour(), "08:00 local after DST")
	assert.Equal(t, 8, q.NextAllowed(at(2026, 10, 24, 22, 0), berlin).In(berlin).Hour(), "08:00 local after DST")
}

func TestQuietHoursNewYork(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	q := &QuietHours{Start: ClockTime{22, 0}, End: ClockTime{7, 0}}
	// 8 March 2026: 02:00 EST -> 03:00 EDT.
	got := q.NextAllowed(time.Date(2026, 3, 7, 23, 0, 0, 0, ny), ny)
	assert.Equal(t, utc(2026, 3, 8, 11, 0), got.UTC(), "07:00 EDT")
	// 1 November 2026: 02:00 EDT -> 01:00 EST.
	got = q.NextAllowed(time.Date(2026, 10, 31, 23, 0, 0, 0, ny), ny)
	assert.Equal(t, utc(2026, 11, 1, 12, 0), got.UTC(), "07:00 EST")
	// During the repeated hour (01:30 EDT and again 01:30 EST) it is night either way.
	first := utc(2026, 11, 1, 5, 30)  // 01:30 EDT
	second := utc(2026, 11, 1, 6, 30) // 01:30 EST
	assert.Equal(t, utc(2026, 11, 1, 12, 0), q.NextAllowed(first, ny).UTC())
	assert.Equal(t, utc(2026, 11, 1, 12, 0), q.NextAllowed(second, ny).UTC())
}

func TestQuietHoursEndInGap(t *testing.T) {
	// A window ending at 02:30 on the spring-forward day: 02:30 does not
	// exist, so the send goes out at the first instant after the gap, 03:00.
	q := &QuietHours{Start: ClockTime{1, 0}, End: ClockTime{2, 30}}

	berlin := mustLoc(t, "Europe/Berlin")
	got := q.NextAllowed(utc(2026, 3, 29, 0, 30), berlin) // 01:30 CET
	assert.Equal(t, utc(2026, 3, 29, 1, 0), got.UTC())
	assert.Equal(t, "03:00 CEST", got.In(berlin).Format("15:04 MST"))

	ny := mustLoc(t, "America/New_York")
	got = q.NextAllowed(utc(2026, 3, 8, 6, 15), ny) // 01:15 EST
	assert.Equal(t, utc(2026, 3, 8, 7, 0), got.UTC())
	assert.Equal(t, "03:00 EDT", got.In(ny).Format("15:04 MST"))

	// A wrapping window whose end falls in the gap.
	q = &QuietHours{Start: ClockTime{22, 0}, End: ClockTime{2, 15}}
	got = q.NextAllowed(time.Date(2026, 3, 28, 23, 0, 0, 0, berlin), berlin)
	assert.Equal(t, "2026-03-29 03:00 CEST", got.In(berlin).Format("2006-01-02 15:04 MST"))
}

func TestQuietHoursEndInRepeatedHour(t *testing.T) {
	// Berlin, 25 October 2026: 02:00–03:00 happens twice (CEST, then CET).
	berlin := mustLoc(t, "Europe/Berlin")
	q := &QuietHours{Start: ClockTime{1, 0}, End: ClockTime{2, 30}}
	// 01:30 CEST: the window ends at the first 02:30 (CEST).
	got := q.NextAllowed(utc(2026, 10, 24, 23, 30), berlin)
	assert.Equal(t, utc(2026, 10, 25, 0, 30), got.UTC())
	// 02:10 CET (after the first 02:30 has passed): the second 02:30, never earlier than t.
	got = q.NextAllowed(utc(2026, 10, 25, 1, 10), berlin)
	assert.Equal(t, utc(2026, 10, 25, 1, 30), got.UTC())
	assert.Equal(t, "02:30 CET", got.In(berlin).Format("15:04 MST"))
}

func TestQuietHoursNotWrapping(t *testing.T) {
	tokyo := mustLoc(t, "Asia/Tokyo")
	q := &QuietHours{Start: ClockTime{12, 0}, End: ClockTime{14, 0}}
	at := func(h, mi int) time.Time { return time.Date(2026, 5, 4, h, mi, 0, 0, tokyo) }
	assert.Equal(t, at(14, 0), q.NextAllowed(at(13, 0), tokyo))
	assert.Equal(t, at(14, 0), q.NextAllowed(at(12, 0), tokyo))
	assert.Equal(t, at(11, 59), q.NextAllowed(at(11, 59), tokyo))
	assert.Equal(t, at(14, 0), q.NextAllowed(at(14, 0), tokyo))
	assert.Equal(t, at(23, 0), q.NextAllowed(at(23, 0), tokyo))
	// nil location means UTC.
	assert.Equal(t, utc(2026, 5, 4, 14, 0), q.NextAllowed(utc(2026, 5, 4, 12, 30), nil))
}

func TestFrequencyCapApply(t *testing.T) {
	want := utc(2026, 6, 10, 10, 0)
	d := 24 * time.Hour
	var nilCap *FrequencyCap
	at, drop := nilCap.Apply(want, []time.Time{want, want, want})
	assert.Equal(t, want, at)
	assert.False(t, drop)

	delay := &FrequencyCap{Max: 3, Window: Duration(7 * d), OverCap: OverCapDelay}
	dropCap := &FrequencyCap{Max: 3, Window: Duration(7 * d), OverCap: OverCapDrop}
	cases := []struct {
		name   string
		cap    *FrequencyCap
		recent []time.Time
		at     time.Time
		drop   bool
	}{
		{"no sends", delay, nil, want, false},
		{"under cap", delay, []time.Time{want.Add(-d), want.Add(-2 * d)}, want, false},
		{"old sends do not count", delay, []time.Time{want.Add(-8 * d), want.Add(-7 * d), want.Add(-d), want.Add(-2 * d)}, want, false},
		{"at cap: delay until the oldest leaves", delay, []time.Time{want.Add(-d), want.Add(-6 * d), want.Add(-3 * d)}, want.Add(d), false},
		{"over cap: delay until enough leave", delay, []time.Time{want.Add(-3 * d), want.Add(-6 * d), want.Add(-d), want.Add(-5 * d)}, want.Add(2 * d), false},
		{"send at want counts", delay, []time.Time{want, want.Add(-time.Hour), want.Add(-2 * time.Hour)}, want.Add(7*d - 2*time.Hour), false},
		{"drop", dropCap, []time.Time{want.Add(-d), want.Add(-2 * d), want.Add(-3 * d)}, want, true},
		{"drop under cap sends", dropCap, []time.Time{want.Add(-d)}, want, false},
		{"max 1", &FrequencyCap{Max: 1, Window: Duration(d), OverCap: OverCapDelay}, []time.Time{want.Add(-time.Hour)}, want.Add(23 * time.Hour), false},
		{"invalid cap allows", &FrequencyCap{Max: 0, Window: Duration(d)}, []time.Time{want}, want, false},
	}
	for _, tc := range cases {
		at, drop := tc.cap.Apply(want, tc.recent)
		assert.Equal(t, tc.at, at, tc.name)
		assert.Equal(t, tc.drop, drop, tc.name)
		if !drop && tc.cap.Max > 0 {
			// Sending at the result keeps the cap.
			n := 0
			for _, s := range tc.recent {
				if s.After(at.Add(-tc.cap.Window.D())) && !s.After(at) {
					n++
				}
			}
			assert.Less(t, n, tc.cap.Max, tc.name)
		}
	}
}

func TestHolidayNewYearAcrossZones(t *testing.T) {
	h := Holiday{ID: "new_year", Cron: "0 9 1 1 *", Template: "x"}
	after := utc(2026, 6, 1, 0, 0)
	tokyo, la := mustLoc(t, "Asia/Tokyo"), mustLoc(t, "America/Los_Angeles")

	tk, err := h.Next(after, tokyo)
	require.NoError(t, err)
	assert.Equal(t, "2027-01-01 09:00 JST", tk.In(tokyo).Format("2006-01-02 15:04 MST"))
	assert.Equal(t, utc(2027, 1, 1, 0, 0), tk.UTC())

	lat, err := h.Next(after, la)
	require.NoError(t, err)
	assert.Equal(t, "2027-01-01 09:00 PST", lat.In(la).Format("2006-01-02 15:04 MST"))
	assert.Equal(t, utc(2027, 1, 1, 17, 0), lat.UTC())
	assert.False(t, tk.Equal(lat), "different instants")

	// Strictly after: from the greeting itself, the next one is a year later.
	again, err := h.Next(tk, tokyo)
	require.NoError(t, err)
	assert.Equal(t, utc(2028, 1, 1, 0, 0), again.UTC())
	// Just before it, the same one.
	same, err := h.Next(tk.Add(-time.Nanosecond), tokyo)
	require.NoError(t, err)
	assert.True(t, same.Equal(tk))
	// nil location means UTC.
	u, err := h.Next(after, nil)
	require.NoError(t, err)
	assert.Equal(t, utc(2027, 1, 1, 9, 0), u)
}

// Away from DST changes, Next is exactly cron's schedule.Next(after.In(loc)).
func TestHolidayMatchesCron(t *testing.T) {
	exprs := []string{"0 9 1 1 *", "30 8 * * 1", "0 12 15 */2 *", "@yearly", "15 10 1 7 *", "0 9 24 12 *"}
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"}
	afters := []time.Time{utc(2026, 1, 10, 3, 4), utc(2026, 5, 20, 18, 0), utc(2026, 12, 31, 23, 59)}
	for _, e := range exprs {
		sched, err := cron.ParseStandard(e)
		require.NoError(t, err)
		for _, z := range zones {
			loc := mustLoc(t, z)
			for _, a := range afters {
				got, err := (Holiday{ID: "h", Cron: e}).Next(a, loc)
				require.NoError(t, err)
				assert.True(t, sched.Next(a.In(loc)).Equal(got), "%s in %s after %s", e, z, a)
			}
		}
	}
}

func TestHolidayAcrossDST(t *testing.T) {
	berlin, ny := mustLoc(t, "Europe/Berlin"), mustLoc(t, "America/New_York")
	next := func(expr string, after time.Time, loc *time.Location) time.Time {
		t.Helper()
		got, err := Holiday{ID: "h", Cron: expr}.Next(after, loc)
		require.NoError(t, err)
		return got
	}
	// A greeting at 09:00 on the day the clocks change keeps its local time.
	got := next("0 9 29 3 *", utc(2026, 3, 1, 0, 0), berlin)
	assert.Equal(t, "2026-03-29 09:00 CEST", got.In(berlin).Format("2006-01-02 15:04 MST"))
	assert.Equal(t, utc(2026, 3, 29, 7, 0), got.UTC())
	got = next("0 9 8 3 *", utc(2026, 3, 1, 0, 0), ny)
	assert.Equal(t, utc(2026, 3, 8, 13, 0), got.UTC())
	got = next("0 9 25 10 *", utc(2026, 10, 1, 0, 0), berlin)
	assert.Equal(t, utc(2026, 10, 25, 8, 0), got.UTC())

	// 02:30 does not exist on 29 March 2026 in Berlin: sent at 03:00 CEST
	// that day (cron itself would skip to 2027).
	got = next("30 2 29 3 *", utc(2026, 3, 1, 0, 0), berlin)
	assert.Equal(t, "2026-03-29 03:00 CEST", got.In(berlin).Format("2006-01-02 15:04 MST"))

	// 02:30 exists twice on 25 October 2026: sent once, at the first.
	got = next("30 2 25 10 *", utc(2026, 10, 1, 0, 0), berlin)
	assert.Equal(t, "2026-10-25 02:30 CEST", got.In(berlin).Format("2006-01-02 15:04 MST"))
	got = next("30 2 25 10 *", got, berlin)
	assert.Equal(t, "2027-10-25 02:30 CEST", got.In(berlin).Format("2006-01-02 15:04 MST"))

	// A daily 01:30 in New York across fall-back fires once per local day.
	got = next("30 1 * * *", utc(2026, 10, 31, 12, 0), ny)
	assert.Equal(t, "2026-11-01 01:30 EDT", got.In(ny).Format("2006-01-02 15:04 MST"))
	got = next("30 1 * * *", got, ny)
	assert.Equal(t, "2026-11-02 01:30 EST", got.In(ny).Format("2006-01-02 15:04 MST"))
}

func TestHolidayErrors(t *testing.T) {
	_, err := Holiday{ID: "xmas", Cron: "0 9 25 13 *"}.Next(utc(2026, 1, 1, 0, 0), time.UTC)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `holiday "xmas": cron "0 9 25 13 *"`)
	_, err = Holiday{ID: "never", Cron: "0 9 31 2 *"}.Next(utc(2026, 1, 1, 0, 0), time.UTC)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "never fires")
	_, err = Holiday{ID: "tz", Cron: "TZ=UTC 0 9 1 1 *"}.Next(utc(2026, 1, 1, 0, 0), time.UTC)
	assert.Error(t, err)
}

func TestNextHoliday(t *testing.T) {
	c := &Campaign{Active: Active{Holidays: []Holiday{
		{ID: "year_end", Cron: "0 9 18 12 *", Template: "a"},
		{ID: "new_year", Cron: "0 9 1 1 *", Template: "b"},
		{ID: "broken", Cron: "nope", Template: "c"},
		{ID: "midyear", Cron: "0 9 1 7 *", Template: "d"},
	}}}
	berlin := mustLoc(t, "Europe/Berlin")
	h, at, ok := c.NextHoliday(utc(2026, 2, 1, 0, 0), berlin)
	require.True(t, ok)
	assert.Equal(t, "midyear", h.ID)
	assert.Equal(t, utc(2026, 7, 1, 7, 0), at.UTC())

	h, at, ok = c.NextHoliday(utc(2026, 12, 20, 0, 0), berlin)
	require.True(t, ok)
	assert.Equal(t, "new_year", h.ID)
	assert.Equal(t, utc(2027, 1, 1, 8, 0), at.UTC())

	// Ties go to the smaller id, whatever the order in the file.
	c.Active.Holidays = append(c.Active.Holidays, Holiday{ID: "another_new_year", Cron: "0 9 1 1 *"})
	h, _, ok = c.NextHoliday(utc(2026, 12, 20, 0, 0), berlin)
	require.True(t, ok)
	assert.Equal(t, "another_new_year", h.ID)

	_, _, ok = (&Campaign{}).NextHoliday(utc(2026, 1, 1, 0, 0), berlin)
	assert.False(t, ok)
	var nilC *Campaign
	_, _, ok = nilC.NextHoliday(utc(2026, 1, 1, 0, 0), berlin)
	assert.False(t, ok)
}

func TestQuietHoursSkippedDay(t *testing.T) {
	// Samoa skipped 30 December 2011 (from UTC-10 to UTC+14): a send held by
	// the night of the 29th goes out at 08:00 on the 31st, not at midnight.
	apia := mustLoc(t, "Pacific/Apia")
	q := &QuietHours{Start: ClockTime{21, 0}, End: ClockTime{8, 0}}
	got := q.NextAllowed(time.Date(2011, 12, 29, 22, 0, 0, 0, apia), apia)
	assert.Equal(t, "2011-12-31 08:00", got.In(apia).Format("2006-01-02 15:04"))
}
