package campaign

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/acme/lifecycle/customer"
)

// Advocacy is what feedback and advocacy events do to a journey.
//
//	advocacy:
//	  events:                    # they make the customer an advocate
//	    - {type: review_left, ends_asks: [review_ask]}
//	    - {type: referral_made, ends_asks: [referral_ask]}
//	  nps: {promoter_min: 9, detractor_max: 6}
//	  detractor:
//	    task_title: "Call {customer}: NPS {score}"
//	    task_due: 2d
//	    notify_template: detractor_alert
//
// An advocate carries the tag customer.TagAdvocate (segments select on it);
// an NPS answer tags the customer promoter or detractor. A promoter becomes
// an advocate and gets the next ask at once; a detractor gets no asks until
// a later answer is not a detractor's, and opens a CRM task for the owner
// with a notice by email.
type Advocacy struct {
	Events    []AdvocacyEvent `yaml:"events,omitempty" json:"events,omitempty"`
	NPS       NPS             `yaml:"nps,omitempty" json:"nps,omitempty"`
	Detractor Detractor       `yaml:"detractor,omitempty" json:"detractor,omitempty"`
}

// AdvocacyEvent is an event type that makes the customer an advocate and
// ends the asks it makes pointless (a review left ends the review ask).
type AdvocacyEvent struct {
	Type     string   `yaml:"type" json:"type"`
	EndsAsks []string `yaml:"ends_asks,omitempty" json:"ends_asks,omitempty"`
}

// NPS reads a Net Promoter Score answer: the event type and property that
// carry the score (0–10), and the bands.
type NPS struct {
	Event        string `yaml:"event,omitempty" json:"event,omitempty"`
	Property     string `yaml:"property,omitempty" json:"property,omitempty"`
	PromoterMin  int    `yaml:"promoter_min,omitempty" json:"promoter_min,omitempty"`
	DetractorMax int    `yaml:"detractor_max,omitempty" json:"detractor_max,omitempty"`
}

// Detractor is what a detractor's answer opens: a CRM task for the owner
// ("{customer}" and "{score}" are replaced) and a transactional notice.
type Detractor struct {
	TaskTitle      string   `yaml:"task_title,omitempty" json:"task_title,omitempty"`
	TaskDue        Duration `yaml:"task_due,omitempty" json:"task_due,omitempty"`
	NotifyTemplate string   `yaml:"notify_template,omitempty" json:"notify_template,omitempty"`
}

// The NPS defaults: the usual bands (promoters 9–10, detractors 0–6) on
// the score property of nps_answered.
const (
	DefaultNPSProperty     = "score"
	DefaultNPSPromoterMin  = 9
	DefaultNPSDetractorMax = 6
)

// NPSBand is how an NPS answer reads.
type NPSBand string

// NPS bands.
const (
	NPSPromoter  NPSBand = "promoter"
	NPSPassive   NPSBand = "passive"
	NPSDetractor NPSBand = "detractor"
)

// NPSAnswer reads an NPS answer from an event of type typ: its score and
// band, ok false when the event is not the NPS event or carries no valid
// score (an integer 0–10, as a number or a string).
func (a Advocacy) NPSAnswer(typ string, props map[string]any) (score int, band NPSBand, ok bool) {
	event := a.NPS.Event
	if event == "" {
		event = customer.EventNPSAnswered
	}
	if typ != event {
		return 0, "", false
	}
	prop := a.NPS.Property
	if prop == "" {
		prop = DefaultNPSProperty
	}
	score, ok = npsScore(props[prop])
	if !ok {
		return 0, "", false
	}
	promoter, detractor := a.NPS.PromoterMin, a.NPS.DetractorMax
	if promoter == 0 {
		promoter = DefaultNPSPromoterMin
	}
	if detractor == 0 {
		detractor = DefaultNPSDetractorMax
	}
	switch {
	case score >= promoter:
		band = NPSPromoter
	case score <= detractor:
		band = NPSDetractor
	default:
		band = NPSPassive
	}
	return score, band, true
}

func npsScore(v any) (int, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, false
		}
		f = float64(n)
	default:
		return 0, false
	}
	if f != math.Trunc(f) || f < 0 || f > 10 {
		return 0, false
	}
	return int(f), true
}

// AdvocacyFor returns the advocacy rule of an event type, if any.
func (a Advocacy) AdvocacyFor(typ string) (AdvocacyEvent, bool) {
	i := slices.IndexFunc(a.Events, func(e AdvocacyEvent) bool { return e.Type == typ })
	if i < 0 {
		return AdvocacyEvent{}, false
	}
	return a.Events[i], true
}

// DetractorTaskTitle is the task title for a detractor's answer.
func (d Detractor) DetractorTaskTitle(customerName string, score int) string {
	title := d.TaskTitle
	if title == "" {
		title = "Talk to {customer}: NPS {score}"
	}
	return strings.NewReplacer("{customer}", customerName, "{score}", strconv.Itoa(score)).Replace(title)
}

func (v *validator) advocacy() {
	a := v.c.Advocacy
	asks := v.c.Active.Asks
	for i, e := range a.Events {
		path := fmt.Sprintf("advocacy.events[%d]", i)
		v.name(path+".type", "event type (such as "+customer.EventReviewLeft+")", e.Type)
		for k, ask := range e.EndsAsks {
			if !slices.Contains(asks, ask) {
				v.add(fmt.Sprintf("%s.ends_asks[%d]", path, k), "%q is not one of active.asks %v", ask, asks)
			}
		}
	}
	n := a.NPS
	if n.Event != "" {
		v.name("advocacy.nps.event", "event type", n.Event)
	}
	promoter, detractor := n.PromoterMin, n.DetractorMax
	if promoter == 0 {
		promoter = DefaultNPSPromoterMin
	}
	if detractor == 0 {
		detractor = DefaultNPSDetractorMax
	}
	if promoter < 1 || promoter > 10 {
		v.add("advocacy.nps.promoter_min", "must be between 1 and 10 (got %d)", promoter)
	}
	if detractor < 0 || detractor >= promoter {
		v.add("advocacy.nps.detractor_max", "must be between 0 and promoter_min - 1 (got %d, promoter_min %d)", detractor, promoter)
	}
	if a.Detractor.TaskDue < 0 {
		v.add("advocacy.detractor.task_due", "must not be negative")
	}
	if t := a.Detractor.NotifyTemplate; t != "" {
		v.template("advocacy.detractor.notify_template", t, customer.CategoryTransactional)
	}
}
