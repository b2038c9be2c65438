package workflows

import (
	"fmt"
	"time"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// pendingTimeout is how long a journey started by an early event waits for
// the signup before it ends (its events stay in the CRM event log).
const pendingTimeout = 30 * 24 * time.Hour

// lateHolidayLimit: a greeting more than this late (worker down, journey
// paused) is skipped rather than sent on the wrong day.
const lateHolidayLimit = 24 * time.Hour

type actionKind string

const (
	actWait       actionKind = "wait"       // nothing scheduled: wait for events
	actEntry      actionKind = "entry"      // a stage's entry actions
	actSend       actionKind = "send"       // an email of a sequence
	actSkip       actionKind = "skip"       // a step the frequency cap drops
	actTransition actionKind = "transition" // a timed stage change
	actEscalate   actionKind = "escalate"   // sales SLA missed
	actDecay      actionKind = "decay"      // behaviour points decay
	actComplete   actionKind = "complete"   // the journey ends
)

// action is the journey's next step: what and when (journey time).
type action struct {
	Kind     actionKind
	At       time.Time
	Template string
	StepID   string
	Key      string
	Category customer.Category
	To       customer.Stage
	Reason   string
	// what the send advances when done
	advance func(s *JourneyState, at time.Time)
}

func (a action) label() string {
	switch a.Kind {
	case actSend:
		return fmt.Sprintf("send %s (%s)", a.StepID, a.Template)
	case actSkip:
		return fmt.Sprintf("skip %s: %s", a.StepID, a.Reason)
	case actTransition:
		return fmt.Sprintf("move to %s: %s", a.To, a.Reason)
	case actComplete:
		return "end: " + a.Reason
	case actWait:
		return "wait for events"
	default:
		return string(a.Kind)
	}
}

// planner decides the next action from state alone: a pure function of the
// state, the campaign and the journey clock, so the same history always
// replays to the same decisions.
type planner struct {
	s   *JourneyState
	c   *campaign.Campaign
	loc *time.Location
	now time.Time
}

func earliest(actions ...action) action {
	best := action{Kind: actWait}
	for _, a := range actions {
		if a.Kind == "" || a.Kind == actWait {
			continue
		}
		if best.Kind == actWait || a.At.Before(best.At) {
			best = a
		}
	}
	return best
}

func (p planner) next() action {
	s, c := p.s, p.c
	switch s.Stage {
	case customer.StagePending:
		return action{Kind: actComplete, At: s.StageEnteredAt.Add(pendingTimeout), Reason: "no signup arrived within 30 days of the first event"}
	case customer.StageUnsubscribed, customer.StageErased:
		return action{Kind: actComplete, At: p.now, Reason: string(s.Stage)}
	}
	if !s.EntryDone {
		return action{Kind: actEntry, At: p.now}
	}
	entered := s.StageEnteredAt
	switch s.Stage {
	case customer.StageTrial:
		return earliest(
			p.sequenceStep(c.Trial.Steps, ""),
			p.transitionAfter(c.Trial.Steps, c.Trial.Length, customer.StageNurture, "trial period over"),
			p.decayTick(),
		)
	case customer.StageNurture:
		band := c.Nurture.BandFor(s.score())
		return earliest(p.sequenceStep(c.Nurture.Steps, band), p.decayTick())
	case customer.StageSales:
		if !s.Accepted && !s.Escalated && c.Sales.SLA.D() > 0 {
			return action{Kind: actEscalate, At: entered.Add(c.Sales.SLA.D())}
		}
		return action{Kind: actWait}
	case customer.StageOnboarding:
		return earliest(
			p.sequenceStep(c.Onboarding.Steps, ""),
			p.transitionAfter(c.Onboarding.Steps, c.Onboarding.Length, customer.StageActive, "onboarding complete"),
		)
	case customer.StageActive:
		return earliest(p.holiday(), p.ask(), p.inactivity())
	case customer.StageAtRisk:
		return earliest(
			p.sequenceStep(c.AtRisk.WinBack, ""),
			p.transitionAfter(c.AtRisk.WinBack, c.AtRisk.ChurnAfter, customer.StageChurned, "win-back sequence exhausted"),
		)
	case customer.StageChurned:
		if c.Churned.Mode == "end" {
			return action{Kind: actComplete, At: p.now, Reason: "churned; campaign ends journeys at churn"}
		}
		if s.ChurnAttempts < c.Churned.MaxAttempts && c.Churned.Every.D() > 0 {
			n := s.ChurnAttempts + 1
			return p.send(entered.Add(time.Duration(n)*c.Churned.Every.D()), fmt.Sprintf("win-back-%d", n), c.Churned.Template,
				func(s *JourneyState, _ time.Time) { s.ChurnAttempts++ })
		}
		return action{Kind: actWait}
	}
	return action{Kind: actWait}
}

// sequenceStep plans the next email of a stage's sequence.
func (p planner) sequenceStep(steps []campaign.Step, band string) action {
	if p.s.StepIndex >= len(steps) {
		return action{}
	}
	st := steps[p.s.StepIndex]
	return p.send(p.s.StageEnteredAt.Add(st.Offset.D()), st.ID, st.TemplateFor(band),
		func(s *JourneyState, _ time.Time) { s.StepIndex++ })
}

// transitionAfter moves on once every step is done and the stage lasted
// long enough.
func (p planner) transitionAfter(steps []campaign.Step, length campaign.Duration, to customer.Stage, reason string) action {
	if p.s.StepIndex < len(steps) {
		return action{}
	}
	return action{Kind: actTransition, At: p.s.StageEnteredAt.Add(length.D()), To: to, Reason: reason}
}

func (p planner) decayTick() action {
	at := p.s.nextDecayAt(p.c.Scoring.Decay)
	if at.IsZero() {
		return action{}
	}
	return action{Kind: actDecay, At: at}
}

func (p planner) holiday() action {
	after := p.s.StageEnteredAt
	if p.s.LastHolidayAt.After(after) {
		after = p.s.LastHolidayAt
	}
	h, at, ok := p.c.NextHoliday(after, p.loc)
	if !ok {
		return action{}
	}
	local := at.In(p.loc).Format("2006-01-02")
	a := action{
		Kind: actSend, At: at, StepID: "holiday-" + h.ID, Template: h.Template,
		Key:      p.key(fmt.Sprintf("holiday/%s/%s", h.ID, local)),
		Category: p.category(h.Template),
		advance:  func(s *JourneyState, _ time.Time) { s.LastHolidayAt = at },
	}
	if p.now.Sub(at) > lateHolidayLimit {
		a.Kind, a.Reason = actSkip, "more than a day late"
	}
	return a
}

func (p planner) ask() action {
	c := p.c.Active
	if len(c.Asks) == 0 || c.AskEvery.D() <= 0 {
		return action{}
	}
	from := p.s.StageEnteredAt
	if p.s.LastAskAt.After(from) {
		from = p.s.LastAskAt
	}
	at := from.Add(c.AskEvery.D())
	tpl := c.Asks[p.s.AskIndex%len(c.Asks)]
	a := p.send(at, fmt.Sprintf("ask-%d", p.s.AskIndex+1), tpl, func(s *JourneyState, _ time.Time) {
		s.AskIndex++
		s.LastAskAt = at
	})
	return a
}

func (p planner) inactivity() action {
	w := p.c.Active.InactivityWindow.D()
	if w <= 0 {
		return action{}
	}
	last := p.s.LastActivityAt
	if last.Before(p.s.StageEnteredAt) {
		last = p.s.StageEnteredAt
	}
	return action{Kind: actTransition, At: last.Add(w), To: customer.StageAtRisk,
		Reason: fmt.Sprintf("no activity for %s", campaign.FormatDuration(w))}
}

// send plans an email due at `due`, applying the recipient's quiet hours and
// the frequency cap to marketing mail.
func (p planner) send(due time.Time, stepID, template string, advance func(*JourneyState, time.Time)) action {
	cat := p.category(template)
	a := action{
		Kind: actSend, At: due, StepID: stepID, Template: template, Category: cat,
		Key:     p.key(fmt.Sprintf("%s#%d/%s", p.s.Stage, p.s.StageSeq, stepID)),
		advance: advance,
	}
	if cat != customer.CategoryMarketing {
		return a
	}
	at := p.c.Sending.QuietHours.NextAllowed(due, p.loc)
	capped, drop := p.c.Sending.FrequencyCap.Apply(at, p.s.RecentSends)
	if drop {
		a.Kind, a.At, a.Reason = actSkip, at, "frequency cap reached"
		return a
	}
	if capped.After(at) {
		// The cap moved it: the new time must respect quiet hours too.
		at = p.c.Sending.QuietHours.NextAllowed(capped, p.loc)
	}
	a.At = at
	return a
}

func (p planner) category(template string) customer.Category {
	if t, ok := p.c.Templates[template]; ok && t.Category == customer.CategoryTransactional {
		return customer.CategoryTransactional
	}
	return customer.CategoryMarketing
}

// key is the idempotency key of an email: customer, journey instance,
// campaign version and the step (with the stage entry counter, so a lead
// who returns to nurture gets the sequence again under new keys).
func (p planner) key(step string) string {
	return sendKey(p.s, step)
}

func sendKey(s *JourneyState, step string) string {
	return fmt.Sprintf("%s/%s/%s@%s/%s", s.CustomerID, s.Journey, s.CampaignID, s.CampaignVersion, step)
}
