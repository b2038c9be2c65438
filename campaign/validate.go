package campaign

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/acme/lifecycle/customer"
)

// FieldError is one problem with a campaign definition: where (file, field
// path, line when known) and why. Validate and Parse return several of them
// joined with errors.Join; errors.As finds the first.
type FieldError struct {
	// Source is the file (Campaign.Source); may be empty.
	Source string
	// Path is the field, e.g. "scoring.threshold" or "nurture.steps[2].offset".
	Path string
	// Msg says what is wrong.
	Msg string
	// Line in Source, when Parse could find the field there; 0 otherwise.
	Line int
}

// Error formats the problem as "file: path: why (line N)".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

var (
	// idPattern is what campaign ids and versions look like.
	idPattern = regexp.MustCompile(`^[a-z0-9._-]+$`)
	// namePattern is what template, step and holiday ids and band names look
	// like (no dots, so they work as path segments).
	namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)
)

// Validate checks the whole definition and returns every problem found
// (joined with errors.Join, in a stable order), each naming the file
// (Source), the field path and why; nil when the campaign is usable.
func (c *Campaign) Validate() error {
	if c == nil {
		return errors.New("no campaign")
	}
	v := &validator{c: c}
	v.validate()
	return v.err()
}

// problems returns Validate's findings as FieldErrors.
func (c *Campaign) problems() []*FieldError {
	v := &validator{c: c}
	v.validate()
	return v.probs
}

type validator struct {
	c     *Campaign
	probs []*FieldError
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, &FieldError{Source: v.c.Source, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.probs) == 0 {
		return nil
	}
	errs := make([]error, len(v.probs))
	for i, p := range v.probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

func (v *validator) validate() {
	c := v.c
	v.ident("id", c.ID)
	v.ident("version", c.Version)
	if strings.TrimSpace(c.Product) == "" {
		v.add("product", "required (templates show it as {{.Product}})")
	}
	if _, err := LoadLocation(c.DefaultTimeZone); err != nil {
		v.add("default_time_zone", "%v", err)
	}
	v.sending()
	v.scoring()
	v.trial()
	v.nurture()
	v.sales()
	v.onboarding()
	v.active()
	v.atRisk()
	v.churned()
	v.advocacy()
	v.reminders()
	v.tagRules()
	v.targets()
	v.templates()
}

func (v *validator) ident(path, s string) {
	switch {
	case s == "":
		v.add(path, "required")
	case !idPattern.MatchString(s):
		v.add(path, "%q may only contain a-z, 0-9, '.', '_' and '-'", s)
	}
}

func (v *validator) name(path, what, s string) {
	switch {
	case s == "":
		v.add(path, "%s is required", what)
	case !namePattern.MatchString(s):
		v.add(path, "%s %q may only contain a-z, 0-9, '_' and '-'", what, s)
	}
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be > 0 (got %s)", d)
	}
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "must be ≥ 0 (got %s)", d)
	}
}

func (v *validator) email(path, addr string) {
	if addr == "" {
		v.add(path, "required (an email address like sales@example.com)")
		return
	}
	// The same rule as for a customer's address: owners get mail too.
	var fe *customer.FieldError
	if errors.As(customer.CheckEmail("", addr), &fe) {
		v.add(path, "%q is not a valid email address (want a plain address like sales@example.com): %s", addr, fe.Problem)
	}
}

// template checks a reference to a template; want, when set, is the
// category the template must have.
func (v *validator) template(path, id string, want customer.Category) {
	if id == "" {
		v.add(path, "required (a template id)")
		return
	}
	t, ok := v.c.Templates[id]
	if !ok {
		v.add(path, "template %q not found%s", id, Suggest(id, sortedKeys(v.c.Templates)))
		return
	}
	if want != "" && t.CategoryOrDefault() != want {
		v.add(path, "template %q must have category %s (it is %s)", id, want, t.CategoryOrDefault())
	}
}

func (v *validator) sending() {
	if q := v.c.Sending.QuietHours; q != nil {
		ok := true
		for _, p := range []struct {
			path string
			t    ClockTime
		}{{"sending.quiet_hours.start", q.Start}, {"sending.quiet_hours.end", q.End}} {
			if !p.t.Valid() {
				v.add(p.path, "must be between 00:00 and 23:59 (got %02d:%02d)", p.t.Hour, p.t.Minute)
				ok = false
			}
		}
		if ok && q.Start == q.End {
			v.add("sending.quiet_hours", "start and end must differ (both %s)", q.Start)
		}
	}
	if f := v.c.Sending.FrequencyCap; f != nil {
		if f.Max < 1 {
			v.add("sending.frequency_cap.max", "must be ≥ 1 (got %d)", f.Max)
		}
		v.positive("sending.frequency_cap.window", f.Window)
		if f.OverCap != OverCapDelay && f.OverCap != OverCapDrop {
			v.add("sending.frequency_cap.over_cap", "must be %q or %q (got %q)", OverCapDelay, OverCapDrop, f.OverCap)
		}
	}
	if g := v.c.Sending.MinGap; g < 0 {
		v.add("sending.min_gap", "must not be negative (got %s)", FormatDuration(g.D()))
	}
}

func (v *validator) scoring() {
	s := v.c.Scoring
	if s.Threshold <= 0 {
		v.add("scoring.threshold", "must be > 0 (got %d)", s.Threshold)
	}
	var missing []string
	for _, src := range customer.LeadSources {
		if _, ok := s.SourcePoints[src]; !ok {
			missing = append(missing, src)
		}
	}
	for _, k := range sortedKeys(s.SourcePoints) {
		if !customer.IsLeadSource(k) {
			v.add("scoring.source_points."+k, "unknown lead source %q (want one of %s)%s", k, strings.Join(customer.LeadSources, ", "), Suggest(k, customer.LeadSources))
		}
	}
	if len(missing) > 0 {
		v.add("scoring.source_points", "missing %s (every lead source needs points: %s)", strings.Join(missing, ", "), strings.Join(customer.LeadSources, ", "))
	}
	for _, k := range sortedKeys(s.EventPoints) {
		if !customer.IsKnownEvent(k) {
			v.add("scoring.event_points."+k, "unknown event type %q%s", k, Suggest(k, customer.KnownEventTypes))
		}
	}
	for i, b := range s.Fit.CompanySize {
		p := fmt.Sprintf("scoring.fit.company_size[%d].min", i)
		if b.Min < 0 {
			v.add(p, "must be ≥ 0 (got %d)", b.Min)
		}
		if i > 0 && b.Min >= s.Fit.CompanySize[i-1].Min {
			v.add(p, "bands must be listed from the largest min down, the first one reached counts (%d after %d)", b.Min, s.Fit.CompanySize[i-1].Min)
		}
	}
	for _, k := range sortedKeys(s.Fit.Roles) {
		if n := NormalizeRole(k); n != k {
			v.add("scoring.fit.roles."+k, "write roles normalised: %q", n)
		}
	}
	if s.Decay.Points < 0 {
		v.add("scoring.decay.points", "must be ≥ 0 (got %d)", s.Decay.Points)
	}
	if s.Decay.Points > 0 {
		v.positive("scoring.decay.every", s.Decay.Every)
	} else {
		v.nonNegative("scoring.decay.every", s.Decay.Every)
	}
}

func (v *validator) templates() {
	if len(v.c.Templates) == 0 {
		v.add("templates", "at least one template is required")
	}
	data := SampleTemplateData(v.c)
	for _, id := range sortedKeys(v.c.Templates) {
		t := v.c.Templates[id]
		p := "templates." + id
		if !namePattern.MatchString(id) {
			v.add(p, "template id %q may only contain a-z, 0-9, '_' and '-'", id)
		}
		switch t.Category {
		case "", customer.CategoryMarketing, customer.CategoryTransactional:
		default:
			v.add(p+".category", "must be %q or %q (got %q)", customer.CategoryMarketing, customer.CategoryTransactional, t.Category)
		}
		if strings.TrimSpace(t.Subject) == "" {
			v.add(p+".subject", "required")
		}
		if strings.TrimSpace(t.Text) == "" {
			v.add(p+".text", "required (every email has a plain-text part)")
		}
		r, err := renderTemplate(id, t, data)
		if err != nil {
			var re *renderError
			if errors.As(err, &re) {
				v.add(re.path, "%v", re.err)
			} else {
				v.add(p, "%v", err)
			}
			continue
		}
		if t.CategoryOrDefault() == customer.CategoryMarketing {
			if t.Text != "" && !strings.Contains(r.Text, SampleUnsubscribeURL) {
				v.add(p+".text", "marketing email must include the unsubscribe link {{.UnsubscribeURL}}")
			}
			if t.HTML != "" && !strings.Contains(r.HTML, SampleUnsubscribeURL) {
				v.add(p+".html", "marketing email must include the unsubscribe link {{.UnsubscribeURL}}")
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
