package campaign

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reminder is an email timed relative to a date the CRM sends: a renewal
// date on the profile, a webinar's start on the registration event.
//
//	reminders:
//	  - {id: renewal-30d, date: renewal_date, offset: -30d, at: "09:00", template: renewal_reminder}
//	  - {id: webinar-tomorrow, event: webinar_registered, date: starts_at, offset: -1d, template: webinar_reminder}
//
// The date is the event property named Date, from events of type Event
// (any event when empty: the CRM sends profile dates as a profile_updated
// event). A later event with another value moves the reminders; one with
// the property empty or null clears the date and cancels them. A value is
// a date ("2027-03-01": a day on the customer's calendar) or an RFC 3339
// time.
type Reminder struct {
	ID    string `yaml:"id" json:"id"`
	Event string `yaml:"event,omitempty" json:"event,omitempty"`
	Date  string `yaml:"date" json:"date"`
	// Offset from the date: negative before it ("-7d"), positive after.
	Offset Duration `yaml:"offset" json:"offset"`
	// At is the local time of day the reminder goes out on its day; when
	// unset, a date-only value uses DefaultReminderAt and a time value
	// the time itself plus the offset.
	At       *ClockTime `yaml:"at,omitempty" json:"at,omitempty"`
	Template string     `yaml:"template" json:"template"`
}

// DefaultReminderAt is when a reminder for a date-only value goes out.
var DefaultReminderAt = ClockTime{Hour: 9}

// DateKey names the date a reminder follows, shared by reminders that
// follow the same one: "renewal_date", "webinar_registered.starts_at".
func (r Reminder) DateKey() string {
	if r.Event == "" {
		return r.Date
	}
	return r.Event + "." + r.Date
}

// Follows reports whether an event of type typ can set the reminder's date.
func (r Reminder) Follows(typ string) bool { return r.Event == "" || r.Event == typ }

// ErrBadDate is the error of a date value that is neither YYYY-MM-DD nor
// RFC 3339.
var ErrBadDate = errors.New("want a date like 2027-03-01 or a time like 2027-03-01T15:00:00Z")

// CheckDate checks a date value as Due would read it.
func CheckDate(value string) error {
	_, _, err := parseDate(value, time.UTC)
	return err
}

func parseDate(value string, loc *time.Location) (t time.Time, dateOnly bool, err error) {
	v := strings.TrimSpace(value)
	if d, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		return d, true, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, fmt.Errorf("date %q: %w", shorten(v, 40), ErrBadDate)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Due is when the reminder for a date value goes out, in the customer's
// zone loc. Whole days of the offset count on the local calendar (a
// reminder at 09:00 a week before stays at 09:00 across a DST change).
func (r Reminder) Due(value string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	t, dateOnly, err := parseDate(value, loc)
	if err != nil {
		return time.Time{}, err
	}
	days, rest := int(r.Offset.D()/day), r.Offset.D()%day
	at := r.At
	if at == nil && dateOnly {
		at = &DefaultReminderAt
	}
	if at == nil {
		return t.Add(r.Offset.D()), nil
	}
	lt := t.In(loc)
	return time.Date(lt.Year(), lt.Month(), lt.Day()+days, at.Hour, at.Minute, 0, 0, loc).Add(rest), nil
}

// ShowDate is a date value as a reminder shows it to the customer, in
// their zone: "Monday 20 April 2026", or "Monday 20 April 2026, 15:00
// CEST" for a time.
func (r Reminder) ShowDate(value string, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t, dateOnly, err := parseDate(value, loc)
	switch {
	case err != nil:
		return value
	case dateOnly:
		return t.Format("Monday 2 January 2006")
	}
	return t.In(loc).Format("Monday 2 January 2006, 15:04 MST")
}

func (v *validator) reminders() {
	var ids []string
	for i, r := range v.c.Reminders {
		path := fmt.Sprintf("reminders[%d]", i)
		v.name(path+".id", "reminder id", r.ID)
		if slices.Contains(ids, r.ID) {
			v.add(path+".id", "%q is used twice", r.ID)
		}
		ids = append(ids, r.ID)
		v.name(path+".date", "date property (such as renewal_date)", r.Date)
		if r.Event != "" {
			v.name(path+".event", "event type", r.Event)
		}
		if r.At != nil && !r.At.Valid() {
			v.add(path+".at", "must be between 00:00 and 23:59 (got %02d:%02d)", r.At.Hour, r.At.Minute)
		}
		v.template(path+".template", r.Template, "")
	}
}
