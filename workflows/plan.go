package workflows

import (
	"fmt"
	"slices"
	"strings"
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
	// Due is when a send was due before the contact policy moved it to
	// At; Deferral says which rules did (campaign.Reason*).
	Due      time.Time
	Deferral []string
	// AnyStage: the email (a reminder) is not tied to the stage it was
	// planned in; a stage change does not cancel it.
	AnyStage bool
	// Date is a reminder's date, for its template ({{.Extra.Date}}).
	Date string
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
	// v11: release 1.1's planning (see rules.v11).
	v11 bool
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
	a := p.stageNext()
	switch p.s.Stage {
	case customer.StagePending, customer.StageUnsubscribed, customer.StageErased:
		return a
	}
	if !p.v11 || a.Kind == actEntry {
		return a
	}
	// Reminders and deferred emails run alongside whatever the stage does.
	return earliest(a, p.reminder(), p.deferredSend())
}

// stageNext is the next step of the stage's own plan.
func (p planner) stageNext() action {
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
	if p.v11 && a.Category == customer.CategoryMarketing {
		// The contact policy holds for greetings too; one it would send
		// more than a day late is not sent on the wrong day.
		d := p.c.Sending.Schedule(at, p.loc, p.s.RecentSends)
		switch {
		case d.Drop:
			a.Kind, a.Reason = actSkip, "frequency cap reached"
			return a
		case d.At.Sub(at) > lateHolidayLimit:
			a.Kind, a.At, a.Reason = actSkip, d.At, "the contact policy ("+strings.Join(d.Reasons, ", ")+") would send it more than a day late"
			return a
		}
		a.At, a.Due, a.Deferral = d.At, at, d.Reasons
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
	if p.v11 {
		// Advocacy: a detractor is asked nothing; an advocate is not asked
		// for what they did already; a promoter is asked now.
		if p.s.Detractor {
			return action{}
		}
		skip := 0
		for skip < len(c.Asks) && slices.Contains(p.s.AsksEnded, c.Asks[(p.s.AskIndex+skip)%len(c.Asks)]) {
			skip++
		}
		if skip == len(c.Asks) {
			return action{}
		}
		tpl = c.Asks[(p.s.AskIndex+skip)%len(c.Asks)]
		if p.s.AskNow {
			at = p.now
		}
		// The next ask counts from when this one went out: one held back
		// (a detractor's months) does not bring the next one at once.
		return p.send(at, fmt.Sprintf("ask-%d", p.s.AskIndex+1), tpl, func(s *JourneyState, sentAt time.Time) {
			s.AskIndex += skip + 1
			s.LastAskAt = sentAt
			s.AskNow = false
		})
	}
	a := p.send(at, fmt.Sprintf("ask-%d", p.s.AskIndex+1), tpl, func(s *JourneyState, _ time.Time) {
		s.AskIndex++
		s.LastAskAt = at
	})
	return a
}

// reminder plans the next reminder of the dates the CRM sent, in the
// campaign's order. A reminder whose time passed more than a day before
// its date arrived (a renewal date set three days before, a reminder a
// week before) is skipped, not sent late.
func (p planner) reminder() action {
	best := action{Kind: actWait}
	for _, r := range p.c.Reminders {
		value, ok := p.s.Dates[r.DateKey()]
		done := r.ID + "@" + value
		if !ok || slices.Contains(p.s.RemindersDone, done) {
			continue
		}
		due, err := r.Due(value, p.loc)
		if err != nil {
			continue // rules checked it; a campaign change cannot make it fail
		}
		mark := func(s *JourneyState, _ time.Time) { s.RemindersDone = append(s.RemindersDone, done) }
		a := p.sendKeyed(due, "reminder-"+r.ID, r.Template, p.key("reminder/"+done), mark)
		a.AnyStage, a.Date = true, r.ShowDate(value, p.loc)
		if p.now.Sub(due) > lateHolidayLimit {
			a.Kind, a.At, a.Reason = actSkip, p.now, "its time passed before the date arrived"
		}
		best = earliest(best, a)
	}
	return best
}

// deferredSend plans the first email the ledger deferred that still fits:
// one of the stage it was planned in, or a reminder.
func (p planner) deferredSend() action {
	best := action{Kind: actWait}
	for _, d := range p.s.Deferred {
		if d.StageSeq != 0 && d.StageSeq != p.s.StageSeq {
			continue
		}
		key := d.Key
		drop := func(s *JourneyState, _ time.Time) {
			s.Deferred = slices.DeleteFunc(s.Deferred, func(x DeferredSend) bool { return x.Key == key })
		}
		a := p.sendKeyed(d.At, d.StepID, d.Template, key, drop)
		a.AnyStage = d.StageSeq == 0
		best = earliest(best, a)
	}
	return best
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
	return p.sendKeyed(due, stepID, template, p.key(fmt.Sprintf("%s#%d/%s", p.s.Stage, p.s.StageSeq, stepID)), advance)
}

// sendKeyed plans an email under its send key; see send.
func (p planner) sendKeyed(due time.Time, stepID, template, key string, advance func(*JourneyState, time.Time)) action {
	cat := p.category(template)
	a := action{
		Kind: actSend, At: due, StepID: stepID, Template: template, Category: cat,
		Key: key, advance: advance,
	}
	if cat != customer.CategoryMarketing {
		return a
	}
	if p.v11 {
		// The contact policy, in one place (campaign.Sending.Schedule).
		d := p.c.Sending.Schedule(due, p.loc, p.s.RecentSends)
		if d.Drop {
			a.Kind, a.Reason = actSkip, "frequency cap reached"
			return a
		}
		a.At, a.Due, a.Deferral = d.At, due, d.Reasons
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
