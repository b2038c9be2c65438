package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// local formats t in the customer's zone the way the timeline shows it.
func (r *Result) local(t time.Time) string {
	return t.In(r.loc).Format("Mon 2006-01-02 15:04") + " " + r.TimeZone
}

// WriteText writes the timeline for people: one line per thing that
// happened, in journey time and the customer's zone, then where the journey
// ends up.
func (r *Result) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	c := r.Customer
	who := strings.TrimSpace(c.FirstName + " " + c.LastName)
	if c.Company != "" {
		who = strings.TrimSpace(who + ", " + c.Company)
	}
	if who != "" {
		who = " (" + who + ")"
	}
	days := int(r.Until.Sub(r.Start) / (24 * time.Hour))
	fmt.Fprintf(b, "Simulation of %s for customer %s%s\n", r.Campaign, c.ID, who)
	fmt.Fprintf(b, "from %s, %d days of journey time; times are the customer's local time\n\n", r.local(r.Start), days)

	width := len(fmt.Sprint(days))
	for _, e := range r.Timeline {
		fmt.Fprintf(b, "day %-*d  %s  %-9s %s\n", width, e.Day, r.local(e.At), e.Kind, e.describe())
	}
	if len(r.Timeline) == 0 {
		b.WriteString("(nothing happened)\n")
	}

	f := r.Final
	end := r.Until
	if f.Ended {
		end = f.EndedAt
	}
	fmt.Fprintf(b, "\n── day %d, %s ──\n", int(end.Sub(r.Start)/(24*time.Hour)), r.local(end))
	if f.Ended {
		fmt.Fprintf(b, "journey    ended: %s\n", f.EndReason)
	}
	if f.Stage != "" {
		fmt.Fprintf(b, "stage      %s (since day %d)\n", f.Stage, int(f.Since.Sub(r.Start)/(24*time.Hour)))
		fmt.Fprintf(b, "score      %d = fit %d + behaviour %d (threshold %d)\n", f.Score, f.Fit, f.Behaviour, f.Threshold)
	}
	if len(f.TopReasons) > 0 {
		parts := make([]string, len(f.TopReasons))
		for i, t := range f.TopReasons {
			parts[i] = fmt.Sprintf("%s %+d", t.Source, t.Points)
		}
		fmt.Fprintf(b, "why        %s\n", strings.Join(parts, ", "))
	}
	if f.NextStep != "" {
		next := f.NextStep
		if !f.NextAt.IsZero() {
			next += " at " + r.local(f.NextAt)
		}
		fmt.Fprintf(b, "next       %s\n", next)
	}
	if f.MailSuppressed {
		b.WriteString("mail       suppressed: no more email to this address\n")
	}
	m := r.Emails
	fmt.Fprintf(b, "emails     %d to the customer (%d marketing, %d transactional", m.ToCustomer, m.Marketing, m.Transactional)
	if m.Moved > 0 {
		fmt.Fprintf(b, "; %d held by the contact policy", m.Moved)
	}
	fmt.Fprintf(b, "), %s to owners, %d skipped", plural(m.Notices, "notice"), m.Skipped)
	if m.Suppressed > 0 {
		fmt.Fprintf(b, ", %d suppressed", m.Suppressed)
	}
	if m.Failed > 0 {
		fmt.Fprintf(b, ", %d FAILED to render", m.Failed)
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "runs       %d (the journey continues as new at stage boundaries, see docs/journey.md)\n", r.Runs)
	if len(r.NotDelivered) > 0 {
		parts := make([]string, len(r.NotDelivered))
		for i, e := range r.NotDelivered {
			parts[i] = fmt.Sprintf("day %d %s", int(e.At.Sub(r.Start)/(24*time.Hour)), e.Type)
		}
		fmt.Fprintf(b, "not sent   %s after the end (raise --until): %s\n", plural(len(parts), "scripted event"), strings.Join(parts, ", "))
	}
	if r.TimelineGap {
		b.WriteString("warning    the journey noted more than the simulator could collect at one point; some skip/score lines may be missing\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (e Entry) describe() string {
	switch e.Kind {
	case KindEmail, KindNotice:
		var b strings.Builder
		switch e.Status {
		case StatusFailed:
			fmt.Fprintf(&b, "✗ FAILED %s (step %s): %s", e.Template, e.Step, e.Detail)
			return b.String()
		case StatusSuppressed:
			b.WriteString("✗ suppressed ")
		}
		b.WriteString(e.Template)
		if e.Kind == KindNotice {
			b.WriteString(" to " + e.To)
		}
		fmt.Fprintf(&b, " %q", e.Subject)
		if e.Step != "" && e.Step != e.Template && e.Kind == KindEmail {
			fmt.Fprintf(&b, " (step %s)", e.Step)
		}
		if e.Status == StatusSuppressed {
			b.WriteString(": " + e.Detail)
		}
		if e.Note != "" {
			b.WriteString(" — " + e.Note)
		}
		return b.String()
	}
	return e.Detail
}

// WriteJSON writes the result as indented JSON (times in UTC).
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
