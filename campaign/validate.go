package campaign

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"time"
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
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		v.add(path, "%q is not a valid email address (want a plain address like sales@example.com)", addr)
	}
}

// template checks a reference to a template; want, when set, is the
// category the template must have.
func (v *validator) template(path, id string, want Category) {
	if id == "" {
		v.add(path, "required (a template id)")
		return
	}
	t, ok := v.c.Templates[id]
	if !ok {
		v.add(path, "template %q not found%s", id, suggest(id, sortedKeys(v.c.Templates)))
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
}

func (v *validator) scoring() {
	s := v.c.Scoring
	if s.Threshold <= 0 {
		v.add("scoring.threshold", "must be > 0 (got %d)", s.Threshold)
	}
	var missing []string
	for _, src := range LeadSources {
		if _, ok := s.SourcePoints[src]; !ok {
			missing = append(missing, src)
		}
	}
	for _, k := range sortedKeys(s.SourcePoints) {
		if !isLeadSource(k) {
			v.add("scoring.source_points."+k, "unknown lead source %q (want one of %s)%s", k, strings.Join(LeadSources, ", "), suggest(k, LeadSources))
		}
	}
	if len(missing) > 0 {
		v.add("scoring.source_points", "missing %s (every lead source needs points: %s)", strings.Join(missing, ", "), strings.Join(LeadSources, ", "))
	}
	for _, k := range sortedKeys(s.EventPoints) {
		if !IsKnownEvent(k) {
			v.add("scoring.event_points."+k, "unknown event type %q%s", k, suggest(k, knownEvents))
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

// steps checks a sequence and returns the last step's offset.
func (v *validator) steps(path string, steps []Step, variants bool) Duration {
	seen := map[string]int{}
	var last Duration
	for i, st := range steps {
		p := fmt.Sprintf("%s[%d]", path, i)
		v.name(p+".id", "step id", st.ID)
		if j, dup := seen[st.ID]; dup && st.ID != "" {
			v.add(p+".id", "duplicate step id %q (also %s[%d])", st.ID, path, j)
		} else {
			seen[st.ID] = i
		}
		if st.Offset < 0 {
			v.add(p+".offset", "must be ≥ 0 (got %s)", st.Offset)
		} else if st.Offset < last {
			v.add(p+".offset", "offsets must not decrease (%s after %s)", st.Offset, last)
		}
		last = max(last, st.Offset)
		if !variants && len(st.Variants) > 0 {
			v.add(p+".variants", "variants are only used in nurture")
		}
		switch {
		case st.Template != "" || !variants:
			v.template(p+".template", st.Template, "")
		case !v.variantsCoverBands(st):
			v.add(p+".template", "required unless variants name a template for every band")
		}
		if variants {
			for _, band := range sortedKeys(st.Variants) {
				vp := p + ".variants." + band
				if !v.hasBand(band) {
					v.add(vp, "unknown band %q (bands: %s)", band, strings.Join(v.bandNames(), ", "))
				}
				v.template(vp, st.Variants[band], "")
			}
		}
	}
	return last
}

func (v *validator) hasBand(name string) bool {
	for _, b := range v.c.Nurture.Bands {
		if b.Name == name {
			return true
		}
	}
	return false
}

func (v *validator) bandNames() []string {
	var n []string
	for _, b := range v.c.Nurture.Bands {
		n = append(n, b.Name)
	}
	return n
}

func (v *validator) variantsCoverBands(st Step) bool {
	if len(v.c.Nurture.Bands) == 0 {
		return false
	}
	for _, b := range v.c.Nurture.Bands {
		if st.Variants[b.Name] == "" {
			return false
		}
	}
	return true
}

func (v *validator) length(path string, length, last Duration) {
	switch {
	case length < 0:
		v.add(path, "must be ≥ 0 (got %s)", length)
	case length < last:
		v.add(path, "must be ≥ the last step's offset (%s < %s)", length, last)
	}
}

func (v *validator) trial() {
	last := v.steps("trial.steps", v.c.Trial.Steps, false)
	v.length("trial.length", v.c.Trial.Length, last)
}

func (v *validator) nurture() {
	n := v.c.Nurture
	if len(n.Bands) == 0 {
		v.add("nurture.bands", "at least one band is required (the first with min_score 0)")
	}
	seen := map[string]bool{}
	for i, b := range n.Bands {
		p := fmt.Sprintf("nurture.bands[%d]", i)
		v.name(p+".name", "band name", b.Name)
		if seen[b.Name] && b.Name != "" {
			v.add(p+".name", "duplicate band %q", b.Name)
		}
		seen[b.Name] = true
		switch {
		case i == 0 && b.MinScore != 0:
			v.add(p+".min_score", "the first band must start at 0 (got %d)", b.MinScore)
		case i > 0 && b.MinScore <= n.Bands[i-1].MinScore:
			v.add(p+".min_score", "bands must be sorted by min_score, ascending (%d after %d)", b.MinScore, n.Bands[i-1].MinScore)
		}
	}
	v.steps("nurture.steps", n.Steps, true)
}

func (v *validator) sales() {
	s := v.c.Sales
	v.email("sales.owner_email", s.OwnerEmail)
	v.template("sales.notify_template", s.NotifyTemplate, Transactional)
	v.positive("sales.sla", s.SLA)
	v.email("sales.escalation_email", s.EscalationEmail)
	v.template("sales.escalation_template", s.EscalationTemplate, Transactional)
	if s.TopReasons < 0 {
		v.add("sales.top_reasons", "must be ≥ 0 (got %d)", s.TopReasons)
	}
}

func (v *validator) onboarding() {
	o := v.c.Onboarding
	last := v.steps("onboarding.steps", o.Steps, false)
	if o.DeliveryOwnerEmail != "" {
		v.email("onboarding.delivery_owner_email", o.DeliveryOwnerEmail)
	}
	v.length("onboarding.length", o.Length, last)
}

// holidayCheckFrom is the fixed start from which validation checks that a
// holiday's expression fires at all.
var holidayCheckFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (v *validator) active() {
	a := v.c.Active
	v.positive("active.inactivity_window", a.InactivityWindow)
	if len(a.ActivityEvents) == 0 {
		v.add("active.activity_events", "at least one event type is required (e.g. login)")
	}
	for i, e := range a.ActivityEvents {
		if !IsKnownEvent(e) {
			v.add(fmt.Sprintf("active.activity_events[%d]", i), "unknown event type %q%s", e, suggest(e, knownEvents))
		}
	}
	seen := map[string]int{}
	for i, h := range a.Holidays {
		p := fmt.Sprintf("active.holidays[%d]", i)
		v.name(p+".id", "holiday id", h.ID)
		if j, dup := seen[h.ID]; dup && h.ID != "" {
			v.add(p+".id", "duplicate holiday id %q (also active.holidays[%d])", h.ID, j)
		} else {
			seen[h.ID] = i
		}
		if _, err := parseHoliday(h.Cron); err != nil {
			v.add(p+".cron", "holiday %q: invalid cron expression %q: %v", h.ID, h.Cron, err)
		} else if _, err := h.Next(holidayCheckFrom, time.UTC); err != nil {
			v.add(p+".cron", "holiday %q: cron expression %q never fires", h.ID, h.Cron)
		}
		v.template(p+".template", h.Template, "")
	}
	if len(a.Asks) > 0 {
		v.positive("active.ask_every", a.AskEvery)
	} else {
		v.nonNegative("active.ask_every", a.AskEvery)
	}
	for i, t := range a.Asks {
		v.template(fmt.Sprintf("active.asks[%d]", i), t, "")
	}
}

func (v *validator) atRisk() {
	a := v.c.AtRisk
	if strings.TrimSpace(a.TaskTitle) == "" {
		v.add("at_risk.task_title", "required (the CRM task for the account owner; {customer} is replaced by the customer's name)")
	}
	v.positive("at_risk.task_due", a.TaskDue)
	v.template("at_risk.alert_template", a.AlertTemplate, Transactional)
	last := v.steps("at_risk.win_back", a.WinBack, false)
	switch {
	case a.ChurnAfter <= 0:
		v.add("at_risk.churn_after", "must be > 0 (got %s)", a.ChurnAfter)
	case a.ChurnAfter < last:
		v.add("at_risk.churn_after", "must be ≥ the last win-back offset (%s < %s)", a.ChurnAfter, last)
	}
}

// Churned modes.
const (
	ChurnedPeriodic = "periodic"
	ChurnedEnd      = "end"
)

func (v *validator) churned() {
	c := v.c.Churned
	switch c.Mode {
	case ChurnedPeriodic:
		v.positive("churned.every", c.Every)
		if c.MaxAttempts < 1 {
			v.add("churned.max_attempts", "must be ≥ 1 (got %d)", c.MaxAttempts)
		}
		v.template("churned.template", c.Template, "")
	case ChurnedEnd:
	default:
		v.add("churned.mode", "must be %q or %q (got %q)", ChurnedPeriodic, ChurnedEnd, c.Mode)
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
		case "", Marketing, Transactional:
		default:
			v.add(p+".category", "must be %q or %q (got %q)", Marketing, Transactional, t.Category)
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
		if t.CategoryOrDefault() == Marketing {
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

// suggest returns ` (did you mean "x"?)` when one of options is close to s.
func suggest(s string, options []string) string {
	best, bestD := "", 3
	for _, o := range options {
		limit := max(1, min(2, len(o)/3))
		if d := editDistance(s, o); d <= limit && d < bestD {
			best, bestD = o, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
