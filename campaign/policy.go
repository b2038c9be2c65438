package campaign

import (
	"slices"
	"time"
)

// The contact policy in one place. Every marketing email — a journey's
// sequence step, a holiday greeting, a reminder, a win-back, an ask — is
// timed by Sending.Schedule in the workflow; the send ledger enforces the
// cap and the gap again when the email is claimed, over every source of
// marketing mail including broadcasts (crm.ContactPolicy), and broadcasts
// select their recipients with the same rules in SQL.

// Policy reasons: why a marketing email goes out later than it was due,
// or not at all. They appear in the journey's timeline, in simulate's
// output and in broadcast counts.
const (
	ReasonQuietHours   = "quiet hours"
	ReasonFrequencyCap = "frequency cap"
	ReasonMinGap       = "minimum gap"
)

// Decision is when a marketing email may go out under the contact policy.
type Decision struct {
	// At is the earliest time at or after the due time that satisfies
	// every rule (the due time itself when none objects).
	At time.Time
	// Drop: the frequency cap's over_cap is "drop" and the cap is reached
	// at the due time: the email is skipped.
	Drop bool
	// Reasons lists the rules that moved (or dropped) the email, in the
	// order they first did; empty when it goes out when due.
	Reasons []string
}

// Deferred reports whether the policy moved the email.
func (d Decision) Deferred(due time.Time) bool { return !d.Drop && d.At.After(due) }

// Schedule applies the contact policy to a marketing email due at `due`
// for a recipient in loc, given the times of their earlier marketing
// emails (any order, any source): quiet hours in the recipient's zone, the
// frequency cap over a rolling window and the minimum gap since the last
// email. Moving a time for one rule can break another (the end of the
// quiet hours may be too close to the last send), so the rules are applied
// until none moves it. It is pure, for workflow code.
func (s Sending) Schedule(due time.Time, loc *time.Location, recent []time.Time) Decision {
	d := Decision{At: due}
	because := func(reason string) {
		if !slices.Contains(d.Reasons, reason) {
			d.Reasons = append(d.Reasons, reason)
		}
	}
	// Each pass only moves the time later, to an end of a quiet window, a
	// send leaving the cap's window or a send plus the gap: a handful of
	// passes settles it; the bound keeps a contradictory policy (a gap
	// that always lands in quiet hours cannot be one: the window ends)
	// from looping.
	for range 16 {
		at := d.At
		if q := s.QuietHours.NextAllowed(at, loc); q.After(at) {
			at = q
			because(ReasonQuietHours)
		}
		capped, drop := s.FrequencyCap.Apply(at, recent)
		if drop {
			because(ReasonFrequencyCap)
			return Decision{At: at, Drop: true, Reasons: d.Reasons}
		}
		if capped.After(at) {
			at = capped
			because(ReasonFrequencyCap)
		}
		if g := s.MinGap.D(); g > 0 {
			for _, sent := range recent {
				if !sent.After(at) && at.Sub(sent) < g {
					at = sent.Add(g)
					because(ReasonMinGap)
				}
			}
		}
		if at.Equal(d.At) {
			return d
		}
		d.At = at
	}
	return d
}
