package campaign

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acme/lifecycle/customer"
)

// Target is what marketing expects of one step of the funnel: a minimum
// conversion from some stages into the next, or a maximum median time in a
// stage. The funnel report (starter report funnel) flags the steps below
// their target, to show where buyers drop off.
//
//	targets:
//	  - {from: [trial, nurture], to: sales, min_conversion: 0.15}
//	  - {stage: trial, max_time_in_stage: 14d}
type Target struct {
	// From and To name a conversion of the funnel report (package crm,
	// FunnelSteps): of the customers who entered From, the share who
	// entered To afterwards must be at least MinConversion (0 to 1).
	From          []customer.Stage `yaml:"from,omitempty" json:"from,omitempty"`
	To            customer.Stage   `yaml:"to,omitempty" json:"to,omitempty"`
	MinConversion float64          `yaml:"min_conversion,omitempty" json:"min_conversion,omitempty"`
	// Stage and MaxTimeInStage: the median completed stay in Stage must
	// be at most MaxTimeInStage.
	Stage          customer.Stage `yaml:"stage,omitempty" json:"stage,omitempty"`
	MaxTimeInStage Duration       `yaml:"max_time_in_stage,omitempty" json:"max_time_in_stage,omitempty"`
}

// IsConversion reports whether the target is about a conversion (else it
// is about time in a stage).
func (t Target) IsConversion() bool { return t.To != "" }

// String names the target as the report shows it: "trial/nurture → sales
// ≥ 15%", "time in trial ≤ 14d".
func (t Target) String() string {
	if t.IsConversion() {
		from := make([]string, len(t.From))
		for i, s := range t.From {
			from[i] = string(s)
		}
		return fmt.Sprintf("%s → %s ≥ %.0f%%", strings.Join(from, "/"), t.To, 100*t.MinConversion)
	}
	return fmt.Sprintf("time in %s ≤ %s", t.Stage, FormatDuration(t.MaxTimeInStage.D()))
}

// journeyStages are the stages a funnel target can name.
var journeyStages = []customer.Stage{
	customer.StageTrial, customer.StageNurture, customer.StageSales, customer.StageOnboarding,
	customer.StageActive, customer.StageAtRisk, customer.StageChurned,
}

func (v *validator) targets() {
	stage := func(path string, s customer.Stage) {
		if !slices.Contains(journeyStages, s) {
			names := make([]string, len(journeyStages))
			for i, st := range journeyStages {
				names[i] = string(st)
			}
			v.add(path, "unknown stage %q%s", s, Suggest(string(s), names))
		}
	}
	for i, t := range v.c.Targets {
		path := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.To != "" && t.Stage != "":
			v.add(path, "a target is either a conversion (from, to, min_conversion) or a time in stage (stage, max_time_in_stage), not both")
		case t.To != "":
			if len(t.From) == 0 {
				v.add(path+".from", "at least one stage is required")
			}
			for j, s := range t.From {
				stage(fmt.Sprintf("%s.from[%d]", path, j), s)
			}
			stage(path+".to", t.To)
			if !(t.MinConversion > 0 && t.MinConversion <= 1) {
				v.add(path+".min_conversion", "must be a share above 0 and at most 1 (0.15 is 15%%), got %g", t.MinConversion)
			}
			if t.MaxTimeInStage != 0 {
				v.add(path+".max_time_in_stage", "belongs to a time-in-stage target (with stage:), not to a conversion")
			}
		case t.Stage != "":
			stage(path+".stage", t.Stage)
			v.positive(path+".max_time_in_stage", t.MaxTimeInStage)
			if t.MinConversion != 0 {
				v.add(path+".min_conversion", "belongs to a conversion target (with from: and to:), not to a time in stage")
			}
		default:
			v.add(path, "say what is measured: from + to + min_conversion, or stage + max_time_in_stage")
		}
	}
}
