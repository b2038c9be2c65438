// Package report turns the CRM's funnel (crm.Funnel) into the stage-by-stage
// analysis marketers use to find where buyers leave: each step of the
// funnel against the campaign's target for it (campaign.Target) and against
// the previous period. It is pure: the CLI (starter report funnel) and the
// scheduled report read the CRM and print what Build returns.
package report

import (
	"fmt"
	"slices"
	"time"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
)

// Funnel is a funnel with its targets and, when asked for, the previous
// period.
type Funnel struct {
	Current crm.Funnel `json:"current"`
	// Previous is the period before Current, of the same length; nil when
	// not compared.
	Previous    *crm.Funnel       `json:"previous,omitempty"`
	Conversions []ConversionRow   `json:"conversions"`
	TimeInStage []StageTimeRow    `json:"time_in_stage"`
	Targets     []campaign.Target `json:"targets,omitempty"`
	// BelowTarget names, in funnel order, every step that missed its
	// target ("trial/nurture → sales: 10.0% < target 15%").
	BelowTarget []string `json:"below_target"`
	// Unmatched are targets that name no step of the report (a conversion
	// the report does not compute).
	Unmatched []string `json:"unmatched,omitempty"`
}

// ConversionRow is one conversion of the funnel with its target and its
// value in the previous period.
type ConversionRow struct {
	crm.Conversion
	// PreviousRate is the rate of the previous period; nil when not
	// compared or nobody entered then.
	PreviousRate *float64 `json:"previous_rate,omitempty"`
	// Target is the campaign's minimum rate for it, if any.
	Target *campaign.Target `json:"target,omitempty"`
	// Below: a target is set, somebody entered, and the rate is under it.
	Below bool `json:"below"`
}

// StageTimeRow is the median time in one stage with its target and its
// value in the previous period.
type StageTimeRow struct {
	crm.StageTime
	PreviousMedian *time.Duration   `json:"-"`
	Target         *campaign.Target `json:"target,omitempty"`
	// Above: a target is set, there are completed stays, and their median
	// is longer.
	Above bool `json:"above"`
}

// Build puts current, previous (nil: not compared) and the targets
// together.
func Build(current crm.Funnel, previous *crm.Funnel, targets []campaign.Target) Funnel {
	out := Funnel{Current: current, Previous: previous, Targets: targets, BelowTarget: []string{}}
	used := make([]bool, len(targets))
	for _, c := range current.Conversions {
		row := ConversionRow{Conversion: c}
		if previous != nil {
			if p, ok := findConversion(previous.Conversions, c); ok && p.Entered > 0 {
				rate := p.Rate
				row.PreviousRate = &rate
			}
		}
		for i, t := range targets {
			if t.IsConversion() && t.To == c.To && slices.Equal(t.From, c.From) && c.Label == "" {
				row.Target, used[i] = &targets[i], true
				row.Below = c.Entered > 0 && c.Rate < t.MinConversion
			}
		}
		if row.Below {
			out.BelowTarget = append(out.BelowTarget, fmt.Sprintf("%s: %.1f%% < target %.0f%% (%d of %d)",
				c.Name(), 100*c.Rate, 100*row.Target.MinConversion, c.Converted, c.Entered))
		}
		out.Conversions = append(out.Conversions, row)
	}
	for _, st := range current.TimeInStage {
		row := StageTimeRow{StageTime: st}
		if previous != nil {
			for _, p := range previous.TimeInStage {
				if p.Stage == st.Stage && p.Stays > 0 {
					m := p.Median
					row.PreviousMedian = &m
				}
			}
		}
		for i, t := range targets {
			if !t.IsConversion() && string(t.Stage) == st.Stage {
				row.Target, used[i] = &targets[i], true
				row.Above = st.Stays > 0 && st.Median > t.MaxTimeInStage.D()
			}
		}
		if row.Above {
			out.BelowTarget = append(out.BelowTarget, fmt.Sprintf("time in %s: median %s > target %s (%d stays)",
				st.Stage, campaign.FormatDuration(st.Median.Round(time.Hour)), campaign.FormatDuration(row.Target.MaxTimeInStage.D()), st.Stays))
		}
		out.TimeInStage = append(out.TimeInStage, row)
	}
	for i, t := range targets {
		// A time-in-stage target with no completed stays yet has no row:
		// it is not unmatched, only not measurable yet.
		if !used[i] && t.IsConversion() {
			out.Unmatched = append(out.Unmatched, t.String())
		}
	}
	return out
}

func findConversion(cs []crm.Conversion, c crm.Conversion) (crm.Conversion, bool) {
	for _, p := range cs {
		if p.To == c.To && p.Label == c.Label && slices.Equal(p.From, c.From) {
			return p, true
		}
	}
	return crm.Conversion{}, false
}

// PreviousPeriod is the period of the same length just before [since,
// until).
func PreviousPeriod(since, until time.Time) (time.Time, time.Time) {
	return since.Add(-until.Sub(since)), since
}
