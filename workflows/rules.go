package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// rules are what happens to a journey when something arrives — a signup,
// a CRM or product event — and when a stage changes: how an event scores,
// how points decay, when a lead goes to sales, back to nurture or on to
// onboarding, when mail stops and what an erase forgets.
//
// They are plain logic: state + event + campaign + journey clock → new
// state + the CRM writes the change needs, in order. They call no Temporal
// API and perform nothing; the workflow queues the writes (crmqueue.go),
// publishes the new stage and plans the next step (plan.go). That is where
// an event becomes a score change, and rules_test.go tests it as such.
type rules struct {
	s   *JourneyState
	c   *campaign.Campaign
	now time.Time // journey clock
	// v11 turns on what release 1.1 added (reminders, advocacy and
	// feedback, the contact policy); runs of 1.0 histories replay without.
	v11 bool
	// writes are the CRM writes the changes so far need, in order.
	writes []activities.CRMWrite
	// notices are the emails to owners the changes call for (a handoff, a
	// churn alert), sent after the writes.
	notices []notice
}

// notice is a transactional email to an owner about the customer.
type notice struct {
	Step, Template, To string
}

func (r *rules) write(w activities.CRMWrite) { r.writes = append(r.writes, w) }

func (r *rules) notify(step, template, to string) {
	if template != "" && to != "" {
		r.notices = append(r.notices, notice{Step: step, Template: template, To: to})
	}
}

// signup applies a (valid) signup of the journey's customer: the first
// starts the trial (or onboarding, when a purchase came first), a later one
// updates the profile.
func (r *rules) signup(in Signup) {
	s := r.s
	if in.CustomerID != s.CustomerID {
		s.note(r.now, "rejected", fmt.Sprintf("signup for %q sent to the journey of %q", in.CustomerID, s.CustomerID))
		return
	}
	if s.Stage == customer.StageErased {
		return
	}
	before := s.score()
	first := !s.HasSignup
	s.HasSignup = true
	s.Contact = in.Profile()
	r.write(activities.CRMWrite{Contact: r.contact()})
	if first {
		// Tags of events that came before the signup: the contact exists now.
		r.writeTags(s.Tags, nil)
	}
	// The fit part of the score is a pure function of the profile and the
	// campaign's rules: computed here, recorded with the score.
	s.Fit, s.FitReasons = r.c.Scoring.FitPoints(in.LeadSource, in.CompanySize, in.Role)
	switch {
	case !first:
		s.note(r.now, "signup", "repeated signup: profile updated, journey unchanged")
		r.checkThreshold()
	case s.Stage != customer.StagePending:
		s.note(r.now, "signup", fmt.Sprintf("signed up (source %s, fit %d)", orDefault(in.LeadSource, customer.LeadCold), s.Fit))
		// unsubscribed before signing up: stays where it is
	case s.PurchasedWhilePending:
		s.note(r.now, "signup", fmt.Sprintf("signed up (source %s, fit %d)", orDefault(in.LeadSource, customer.LeadCold), s.Fit))
		r.transition(customer.StageOnboarding, "purchase arrived before the signup")
	default:
		s.note(r.now, "signup", fmt.Sprintf("signed up (source %s, fit %d)", orDefault(in.LeadSource, customer.LeadCold), s.Fit))
		r.transition(customer.StageTrial, "trial signup")
		r.checkThreshold()
	}
	r.scoreChanged(before, "signup")
}

// events applies new events (the CRM had not seen them, and their types
// mean something to the campaign) in the order they happened.
func (r *rules) events(events []Event) {
	before := r.s.score()
	for _, e := range events {
		r.event(e)
		if r.s.Stage == customer.StageUnsubscribed || r.s.Stage == customer.StageErased {
			return
		}
	}
	r.checkThreshold()
	r.scoreChanged(before, "events")
}

// event is the effect of one new event.
func (r *rules) event(e Event) {
	s, now := r.s, r.now
	at := s.journeyTime(e.At)
	if at.IsZero() || at.After(now) {
		at = now
	}
	stage := s.Stage
	// An event from before the current stage began (a late delivery) must
	// not undo what the stage change did.
	stale := at.Before(s.StageEnteredAt)
	r.tags(e)
	// used: the event meant something to the campaign's reminders or
	// advocacy rules even where it changes nothing else.
	used := false
	if r.v11 && e.Type != customer.EventErase {
		used = r.reminderDates(e)
		used = r.feedback(e) || used
	}
	switch e.Type {
	case customer.EventUnsubscribe:
		r.suppress(customer.ReasonUnsubscribed)
		r.transition(customer.StageUnsubscribed, "customer unsubscribed")
		return
	case customer.EventErase:
		r.erase()
		return
	case customer.EventEmailBounced, customer.EventEmailComplained:
		reason := map[string]string{
			customer.EventEmailBounced:    customer.ReasonBounced,
			customer.EventEmailComplained: customer.ReasonComplained,
		}[e.Type]
		r.suppress(reason)
		s.MailSuppressed, s.SuppressedReason = true, reason
		s.note(now, "suppressed", "no more email: address "+reason)
		return
	case customer.EventSalesAccepted:
		if stage == customer.StageSales && !stale && !s.Accepted {
			s.Accepted = true
			r.setHandoff(customer.HandoffAccepted)
			s.note(now, "sales", "handoff accepted by sales")
		} else {
			s.note(now, "ignored", fmt.Sprintf("sales_accepted %s: not in sales or older than the handoff", e.ID))
		}
		return
	case customer.EventDealWon, customer.EventPurchase:
		switch stage {
		case customer.StagePending:
			s.PurchasedWhilePending = true
			s.note(now, "event", e.Type+" before signup: onboarding starts with the signup")
			return
		case customer.StageTrial, customer.StageNurture, customer.StageSales:
			if stage == customer.StageSales {
				r.setHandoff(customer.HandoffWon)
			}
			r.transition(customer.StageOnboarding, e.Type)
			return
		}
	case customer.EventDealLost, customer.EventSalesRejected:
		if stage != customer.StageSales || stale {
			s.note(now, "ignored", fmt.Sprintf("%s %s: not in sales or older than the handoff", e.Type, e.ID))
			return
		}
		r.setHandoff(map[string]string{
			customer.EventDealLost:      customer.HandoffLost,
			customer.EventSalesRejected: customer.HandoffRejected,
		}[e.Type])
		// Back to nurture with behaviour points reset, so the lead is not
		// handed straight back; the fit score stays.
		s.Behaviour, s.Contributions = 0, nil
		r.transition(customer.StageNurture, e.Type)
		return
	}

	// Engagement scoring while the lead is not yet a customer.
	if pts := r.c.Scoring.EventPointsFor(e.Type); pts != 0 && isLead(stage) {
		s.decay(r.c.Scoring.Decay, now)
		// An event that happened a while ago counts as decayed since then.
		pts = r.c.Scoring.Decayed(pts, at, now)
		s.Behaviour = max(0, s.Behaviour+pts)
		// Engagement restarts the decay clock.
		if at.After(s.LastEngagementAt) {
			s.LastEngagementAt = at
		}
		if s.Contributions == nil {
			s.Contributions = map[string]int{}
		}
		s.Contributions[e.Type] += pts
		s.note(now, "score", fmt.Sprintf("%s +%d → %d", e.Type, pts, s.score()))
	}
	// Activity of customers.
	if r.c.IsActivity(e.Type) {
		switch stage {
		case customer.StageActive:
			if at.After(s.LastActivityAt) {
				s.LastActivityAt = at
			}
		case customer.StageAtRisk, customer.StageChurned:
			r.transition(customer.StageActive, "reactivated: "+e.Type)
			return
		}
	}
	if !isLead(stage) && r.c.Scoring.EventPointsFor(e.Type) == 0 && !r.c.IsActivity(e.Type) && !used {
		s.note(now, "event", fmt.Sprintf("%s recorded (no effect in %s)", e.Type, stage))
	}
}

func isLead(s customer.Stage) bool {
	return s == customer.StagePending || s == customer.StageTrial || s == customer.StageNurture
}

// enter performs a stage's entry actions (once per stage entry): the
// handoff to sales with its reasons, the delivery owner at onboarding, the
// churn warning task; and the owners' notices.
func (r *rules) enter() {
	s, c, now := r.s, r.c, r.now
	owner := orDefault(s.Contact.OwnerEmail, c.Sales.OwnerEmail)
	switch s.Stage {
	case customer.StageSales:
		s.HandoffKey = s.key("handoff", s.StageSeq)
		r.write(activities.CRMWrite{Handoff: &activities.HandoffInput{
			Key: s.HandoffKey, CustomerID: s.CustomerID, Score: s.score(), Reasons: s.topReasons(c.Sales.TopReasons),
			OwnerEmail: owner, SLADue: now.Add(c.Sales.SLA.D()),
		}})
		r.notify("sales-handoff", c.Sales.NotifyTemplate, owner)
	case customer.StageOnboarding:
		r.write(activities.CRMWrite{Contact: r.contact()})
	case customer.StageAtRisk:
		title := strings.NewReplacer("{customer}", displayName(s)).Replace(c.AtRisk.TaskTitle)
		r.write(activities.CRMWrite{Task: &activities.TaskInput{
			Key: s.key("churn-warning", s.StageSeq), CustomerID: s.CustomerID, OwnerEmail: owner,
			Kind: customer.TaskChurnWarning, Title: title, DueAt: now.Add(c.AtRisk.TaskDue.D()),
		}})
		r.notify("churn-alert", c.AtRisk.AlertTemplate, owner)
	}
	s.EntryDone = true
}

// escalate: sales did not accept the handoff within the SLA.
func (r *rules) escalate() {
	s, c := r.s, r.c
	s.Escalated = true
	r.setHandoff(customer.HandoffEscalated)
	r.notify("sales-escalation", c.Sales.EscalationTemplate, c.Sales.EscalationEmail)
	s.note(r.now, "sales", fmt.Sprintf("handoff not accepted within %s: escalated", campaign.FormatDuration(c.Sales.SLA.D())))
}

// contact is the customer's CRM profile as the journey knows it, in the
// zone the journey sends in; from onboarding on it names the delivery
// owner.
func (r *rules) contact() *activities.Contact {
	s := r.s
	rec := &activities.Contact{Profile: s.Contact, CampaignID: s.CampaignID, CampaignVersion: s.CampaignVersion}
	rec.CustomerID = s.CustomerID
	rec.TimeZone = location(s, r.c).String()
	if s.Stage == customer.StageOnboarding || s.Stage == customer.StageActive {
		rec.DeliveryOwnerEmail = r.c.Onboarding.DeliveryOwnerEmail
	}
	return rec
}

// checkThreshold hands a lead to sales once the score reaches the
// threshold.
func (r *rules) checkThreshold() {
	s := r.s
	if s.Stage != customer.StageTrial && s.Stage != customer.StageNurture {
		return
	}
	if t := r.c.Scoring.Threshold; t > 0 && s.score() >= t {
		r.transition(customer.StageSales, fmt.Sprintf("score %d reached threshold %d", s.score(), t))
	}
}

// decay applies behaviour decay up to now (a planned step of its own).
func (r *rules) decay() {
	before := r.s.score()
	if r.s.decay(r.c.Scoring.Decay, r.now) {
		r.s.note(r.now, "score", fmt.Sprintf("decay → %d", r.s.score()))
		r.scoreChanged(before, "decay")
	}
}

// scoreChanged records the score in the CRM when it moved since before, so
// that segments (broadcasts, reports) select on the journey's true score.
func (r *rules) scoreChanged(before int, why string) {
	s := r.s
	if s.score() == before || s.Stage == customer.StageErased {
		return
	}
	s.ScoreSeq++
	r.write(activities.CRMWrite{Score: &activities.ScoreInput{
		Key: s.key("score", s.ScoreSeq), CustomerID: s.CustomerID,
		Score: s.score(), Behaviour: s.Behaviour, Fit: s.Fit, Reason: why, At: r.now,
	}})
}

// transition moves the journey to another stage, records the change in
// the CRM and says why.
func (r *rules) transition(to customer.Stage, reason string) {
	s := r.s
	// The CRM's erase records its own transition to erased.
	if to != customer.StageErased {
		r.write(activities.CRMWrite{Transition: &activities.TransitionInput{
			Key: s.key("transition", s.StageSeq+1), CustomerID: s.CustomerID, From: s.Stage, To: to, Reason: reason,
			At: r.now, CampaignID: s.CampaignID, CampaignVersion: s.CampaignVersion,
			Journey: s.Journey, StageSeq: s.StageSeq + 1,
		}})
	}
	from := s.Stage
	s.Stage = to
	s.StageSeq++
	s.StageEnteredAt = r.now
	s.EntryDone = false
	s.StepIndex = 0
	s.Accepted, s.Escalated = false, false
	if to == customer.StageActive {
		s.LastActivityAt = r.now
	}
	if to == customer.StageChurned {
		s.ChurnAttempts = 0
	}
	// Emails the ledger deferred belong to the stage they were planned in
	// (reminders, StageSeq 0, to none).
	s.Deferred = slices.DeleteFunc(s.Deferred, func(d DeferredSend) bool { return d.StageSeq != 0 })
	s.note(r.now, "stage", fmt.Sprintf("%s → %s: %s", from, to, reason))
}

// suppress stops mail to the customer's address, in the CRM's
// suppression list too (broadcasts read it).
func (r *rules) suppress(reason string) {
	if r.s.Contact.Email == "" {
		return
	}
	r.write(activities.CRMWrite{Suppress: &activities.SuppressInput{
		CustomerID: r.s.CustomerID, Email: r.s.Contact.Email, Reason: reason,
	}})
}

// setHandoff moves the sales handoff along.
func (r *rules) setHandoff(status string) {
	if r.s.HandoffKey == "" {
		return
	}
	r.write(activities.CRMWrite{HandoffStatus: &activities.HandoffStatusInput{Key: r.s.HandoffKey, Status: status}})
}

// erase deletes the customer's personal data in the CRM and ends the
// journey; the journey's own state forgets the contact too.
func (r *rules) erase() {
	s := r.s
	r.write(activities.CRMWrite{Erase: &activities.EraseInput{CustomerID: s.CustomerID}})
	s.Contact, s.Tags = customer.Profile{}, nil
	for i := range s.Timeline {
		s.Timeline[i].Detail = redact(s.Timeline[i])
	}
	r.transition(customer.StageErased, "personal data erased on request")
}

func redact(e TimelineEntry) string {
	if e.Kind == "stage" {
		return e.Detail
	}
	return "(erased)"
}

// location is the customer's time zone, else the campaign's, else UTC.
func location(s *JourneyState, c *campaign.Campaign) *time.Location {
	for _, name := range []string{s.Contact.TimeZone, c.DefaultTimeZone, "UTC"} {
		if name == "" {
			continue
		}
		if loc, err := campaign.LoadLocation(name); err == nil {
			return loc
		}
	}
	return time.UTC
}

// displayName is how notices to owners name the customer.
func displayName(s *JourneyState) string {
	c := s.Contact
	name := strings.TrimSpace(c.FirstName + " " + c.LastName)
	if name == "" {
		name = s.CustomerID
	}
	if c.Company != "" {
		name += " (" + c.Company + ")"
	}
	return name
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
