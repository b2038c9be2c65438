package campaign

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // time zones from the embedded tz database when the system has none

	"github.com/robfig/cron/v3"
)

var locations sync.Map // name -> *time.Location

// LoadLocation returns the IANA time zone name (e.g. "Europe/Berlin",
// "UTC"). An empty name and "Local" (the machine's zone, which would make
// workflow code depend on the worker it runs on) are errors. Locations are
// cached per process, so after the first call for a name nothing is read.
//
// Where the zone data comes from is Go's rule: $ZONEINFO, then the system's
// tz database, then the copy embedded in the binary by time/tzdata (so a
// minimal container still has every zone). For replay safety all workers
// should see the same data: run them from the same image, or set ZONEINFO
// to one zoneinfo.zip.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, errors.New("empty time zone name (want an IANA name such as Europe/Berlin)")
	case "Local":
		return nil, errors.New(`time zone "Local" is not allowed (want an IANA name such as Europe/Berlin)`)
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Berlin)", name)
	}
	l, _ := locations.LoadOrStore(name, loc)
	return l.(*time.Location), nil
}

// NextAllowed returns the earliest time at or after t at which marketing
// mail may be sent: t itself when its wall time in loc lies outside the
// quiet window [Start, End), else the window's end on the right local day
// (the next day when the window wraps midnight and t is before midnight).
// A nil receiver allows everything; a nil loc means UTC.
//
// It is DST-correct: the end is a wall time in loc. If that wall time does
// not exist that day (spring-forward gap) the result is the first instant
// after the gap; if it exists twice (fall-back) the earliest occurrence not
// before t is used.
func (q *QuietHours) NextAllowed(t time.Time, loc *time.Location) time.Time {
	if q == nil || q.Start == q.End {
		return t
	}
	if loc == nil {
		loc = time.UTC
	}
	// The window's end is normally outside the window; only when a zone
	// skips a whole day (Pacific/Apia, 2011) can the first instant after a
	// gap land inside it again, so look once more.
	for range 3 {
		next, quiet := q.windowEnd(t, loc)
		if !quiet {
			return t
		}
		t = next
	}
	return t
}

// windowEnd reports whether t is inside the quiet window and if so when the
// window ends.
func (q *QuietHours) windowEnd(t time.Time, loc *time.Location) (time.Time, bool) {
	lt := t.In(loc)
	// Position of t within its local day, as wall-clock time.
	tod := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute +
		time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())
	start := time.Duration(q.Start.minutes()) * time.Minute
	end := time.Duration(q.End.minutes()) * time.Minute
	y, m, d := lt.Date()
	switch {
	case start < end: // e.g. 12:00–14:00
		if tod < start || tod >= end {
			return t, false
		}
	default: // wraps midnight, e.g. 21:00–08:00
		if tod >= start {
			d++ // ends tomorrow
		} else if tod >= end {
			return t, false
		}
	}
	at := wallInstant(loc, y, m, d, q.End.Hour, q.End.Minute, t)
	if !at.After(t) {
		return t, false
	}
	return at, true
}

// wallInstant returns the first instant not before notBefore at which loc's
// wall clock shows the given date and time (the date may be denormalised,
// e.g. day 32). If that wall time does not exist (a gap), it returns the
// first instant after the gap. If every occurrence lies before notBefore,
// it returns the last one.
func wallInstant(loc *time.Location, y int, mo time.Month, d, h, mi int, notBefore time.Time) time.Time {
	occ, gapEnd := wallInstants(loc, y, mo, d, h, mi)
	if len(occ) == 0 {
		return gapEnd
	}
	for _, o := range occ {
		if !o.Before(notBefore) {
			return o
		}
	}
	return occ[len(occ)-1]
}

// wallInstants returns the instants (ascending; none, one, or two around a
// fall-back) at which loc's wall clock shows the given date and time, and
// when there are none, the first instant after the gap.
func wallInstants(loc *time.Location, y int, mo time.Month, d, h, mi int) ([]time.Time, time.Time) {
	wall := time.Date(y, mo, d, h, mi, 0, 0, time.UTC) // normalises the date
	y, mo, d = wall.Date()
	// Candidate UTC offsets: those in force around that wall time. Any
	// transition near it lies within two days either way.
	var offsets []int
	for _, probe := range []time.Duration{-48 * time.Hour, 0, 48 * time.Hour} {
		_, off := wall.Add(probe).In(loc).Zone()
		if !containsInt(offsets, off) {
			offsets = append(offsets, off)
		}
	}
	var occ []time.Time
	for _, off := range offsets {
		inst := wall.Add(-time.Duration(off) * time.Second).In(loc)
		iy, imo, id := inst.Date()
		if iy == y && imo == mo && id == d && inst.Hour() == h && inst.Minute() == mi && inst.Second() == 0 {
			if !containsTime(occ, inst) {
				occ = append(occ, inst)
			}
		}
	}
	sort.Slice(occ, func(i, j int) bool { return occ[i].Before(occ[j]) })
	if len(occ) > 0 {
		return occ, time.Time{}
	}
	// A gap: read with the offset in force before it, the wall time lands
	// after the transition, in the zone that starts at the gap's end.
	_, before := wall.Add(-48 * time.Hour).In(loc).Zone()
	inst := wall.Add(-time.Duration(before) * time.Second).In(loc)
	if start, _ := inst.ZoneBounds(); !start.IsZero() && !start.After(inst) {
		return nil, start
	}
	return nil, inst
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsTime(s []time.Time, v time.Time) bool {
	for _, x := range s {
		if x.Equal(v) {
			return true
		}
	}
	return false
}

// Apply applies the cap to a marketing email wanted at `want`, given the
// send times of earlier marketing mail (any order). If fewer than Max sends
// fall in (want-Window, want] it returns (want, false). Otherwise, with
// OverCap "drop" it returns (want, true): skip the email; with "delay" (or
// anything else) it returns the earliest time at which the window holds
// fewer than Max sends — the oldest relevant send plus Window — and false.
// A nil cap, and one with Max < 1 or Window <= 0 (which Validate rejects),
// allow everything.
func (f *FrequencyCap) Apply(want time.Time, recent []time.Time) (at time.Time, drop bool) {
	if f == nil || f.Max < 1 || f.Window <= 0 {
		return want, false
	}
	w := f.Window.D()
	count := func(t time.Time) int {
		n := 0
		from := t.Add(-w)
		for _, s := range recent {
			if s.After(from) && !s.After(t) {
				n++
			}
		}
		return n
	}
	if count(want) < f.Max {
		return want, false
	}
	if f.OverCap == OverCapDrop {
		return want, true
	}
	// The count only falls when a send leaves the window, at send+Window.
	cands := make([]time.Time, 0, len(recent))
	for _, s := range recent {
		if c := s.Add(w); c.After(want) {
			cands = append(cands, c)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Before(cands[j]) })
	for _, c := range cands {
		if count(c) < f.Max {
			return c, false
		}
	}
	return want, false // unreachable: after the last send leaves, the window is empty
}

// Over-cap policies of a FrequencyCap.
const (
	OverCapDelay = "delay"
	OverCapDrop  = "drop"
)

// parseHoliday parses a holiday's cron expression: standard 5 fields (or a
// descriptor such as @yearly) evaluated on the customer's local calendar.
// Time zone prefixes and @every are rejected: the zone is the customer's,
// and a holiday is a calendar date, not an interval.
func parseHoliday(expr string) (*cron.SpecSchedule, error) {
	e := strings.TrimSpace(expr)
	if e == "" {
		return nil, errors.New("empty cron expression")
	}
	if strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ=") {
		return nil, errors.New("a time zone prefix is not allowed: holidays use the customer's time zone")
	}
	s, err := cron.ParseStandard(e)
	if err != nil {
		return nil, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, errors.New("not a calendar expression (@every is not allowed)")
	}
	return spec, nil
}

// Next returns the first time strictly after `after` at which the holiday's
// cron expression (cron.ParseStandard) fires on loc's local calendar; a nil
// loc means UTC. The result is an instant (shown in loc).
//
// The expression is matched against wall-clock time, so DST changes do not
// skip or repeat a greeting: a wall time that does not exist that day
// (spring-forward gap) fires at the first instant after the gap, and one
// that exists twice (fall-back) fires once, at its first occurrence after
// `after`. (Evaluating cron directly on a DST-aware time, as
// schedule.Next(after.In(loc)) does, would skip such a greeting for a whole
// year.) Outside DST changes the results are the same.
func (h Holiday) Next(after time.Time, loc *time.Location) (time.Time, error) {
	spec, err := parseHoliday(h.Cron)
	if err != nil {
		return time.Time{}, fmt.Errorf("holiday %q: cron %q: %w", h.ID, h.Cron, err)
	}
	if loc == nil {
		loc = time.UTC
	}
	la := after.In(loc)
	// The local wall clock, read as if it were UTC (which has no DST).
	wall := time.Date(la.Year(), la.Month(), la.Day(), la.Hour(), la.Minute(), la.Second(), la.Nanosecond(), time.UTC)
	for range 8 {
		wall = spec.Next(wall)
		if wall.IsZero() {
			return time.Time{}, fmt.Errorf("holiday %q: cron %q never fires", h.ID, h.Cron)
		}
		occ, gapEnd := wallInstants(loc, wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute())
		if len(occ) == 0 {
			occ = []time.Time{gapEnd}
		}
		for _, o := range occ {
			if o.After(after) {
				return o, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("holiday %q: cron %q: no time after %s", h.ID, h.Cron, after.Format(time.RFC3339))
}

// NextHoliday returns the holiday that comes first after `after` on loc's
// calendar and when it fires (ties go to the smaller id). Holidays whose
// expression does not parse are skipped (Validate rejects them). ok is false
// when there is none.
func (c *Campaign) NextHoliday(after time.Time, loc *time.Location) (h Holiday, at time.Time, ok bool) {
	if c == nil {
		return Holiday{}, time.Time{}, false
	}
	for _, cand := range c.Active.Holidays {
		t, err := cand.Next(after, loc)
		if err != nil {
			continue
		}
		if !ok || t.Before(at) || t.Equal(at) && cand.ID < h.ID {
			h, at, ok = cand, t, true
		}
	}
	return h, at, ok
}
