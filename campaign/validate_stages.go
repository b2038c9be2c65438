package campaign

import (
	"fmt"
	"strings"
	"time"

	"github.com/acme/lifecycle/customer"
)

// The checks of the journey's stages, one per section of a campaign file:
// their step sequences, lengths, owners and templates (validate.go holds
// the validator and the checks of the other sections).

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
	v.template("sales.notify_template", s.NotifyTemplate, customer.CategoryTransactional)
	v.positive("sales.sla", s.SLA)
	v.email("sales.escalation_email", s.EscalationEmail)
	v.template("sales.escalation_template", s.EscalationTemplate, customer.CategoryTransactional)
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
		if !customer.IsKnownEvent(e) {
			v.add(fmt.Sprintf("active.activity_events[%d]", i), "unknown event type %q%s", e, Suggest(e, customer.KnownEventTypes))
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
	v.template("at_risk.alert_template", a.AlertTemplate, customer.CategoryTransactional)
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
