package workflows

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// The rules of release 1.1 that act on what a customer says and on the
// dates the CRM sends (rules.go): advocacy and NPS answers, reminder dates.

// hasCustomer: the journey has a customer to ask, task or remind (signed
// up, still mailable by the journey).
func (r *rules) hasCustomer() bool {
	switch r.s.Stage {
	case customer.StagePending, customer.StageUnsubscribed, customer.StageErased:
		return false
	}
	return r.s.HasSignup
}

// feedback applies advocacy and NPS events (campaign.Advocacy): advocates
// are tagged and their pointless asks end; a promoter is asked at once; a
// detractor is asked nothing more and opens a task for the owner, with a
// notice.
func (r *rules) feedback(e Event) (used bool) {
	s, c := r.s, r.c
	if !r.hasCustomer() {
		return false
	}
	adv, ok := c.Advocacy.AdvocacyFor(e.Type)
	if ok {
		s.Advocate = true
		r.changeTags([]string{customer.TagAdvocate}, nil)
		ended := ""
		for _, ask := range adv.EndsAsks {
			if !slices.Contains(s.AsksEnded, ask) {
				s.AsksEnded = append(s.AsksEnded, ask)
				ended += ", " + ask
			}
		}
		msg := e.Type + ": an advocate now"
		if ended != "" {
			msg += "; no more " + strings.TrimPrefix(ended, ", ")
		}
		s.note(r.now, "advocacy", msg)
	}
	score, band, answered := c.Advocacy.NPSAnswer(e.Type, e.Properties)
	if !answered {
		return ok
	}
	s.NPSScore = &score
	s.NPSAnswers++
	switch band {
	case campaign.NPSPromoter:
		s.Advocate, s.Detractor, s.AskNow = true, false, true
		r.changeTags([]string{customer.TagAdvocate, customer.TagPromoter}, []string{customer.TagDetractor})
		s.note(r.now, "feedback", fmt.Sprintf("NPS %d: a promoter and an advocate; the next ask goes out now", score))
	case campaign.NPSPassive:
		s.Detractor = false
		r.changeTags(nil, []string{customer.TagPromoter, customer.TagDetractor})
		s.note(r.now, "feedback", fmt.Sprintf("NPS %d: passive", score))
	case campaign.NPSDetractor:
		s.Detractor, s.AskNow = true, false
		r.changeTags([]string{customer.TagDetractor}, []string{customer.TagPromoter})
		d := c.Advocacy.Detractor
		owner := orDefault(s.Contact.OwnerEmail, orDefault(c.Onboarding.DeliveryOwnerEmail, c.Sales.OwnerEmail))
		r.write(activities.CRMWrite{Task: &activities.TaskInput{
			Key: s.key("detractor", s.NPSAnswers), CustomerID: s.CustomerID, OwnerEmail: owner,
			Kind: customer.TaskDetractorFollowUp, Title: d.DetractorTaskTitle(displayName(s), score),
			DueAt: r.now.Add(max(d.TaskDue.D(), 0)),
		}})
		r.notify(fmt.Sprintf("detractor-alert-%d", s.NPSAnswers), d.NotifyTemplate, owner)
		s.note(r.now, "feedback", fmt.Sprintf("NPS %d: a detractor; asks stop, %s gets a task", score, owner))
	}
	return true
}

// reminderDates takes the reminder dates an event carries: a new value
// reschedules the reminders that follow it, an empty or null one cancels
// them, one that is not a date is noted and ignored.
func (r *rules) reminderDates(e Event) (used bool) {
	s := r.s
	var done []string // date keys this event already set
	for _, rem := range r.c.Reminders {
		key := rem.DateKey()
		raw, present := e.Properties[rem.Date]
		if !rem.Follows(e.Type) || !present || slices.Contains(done, key) {
			continue
		}
		done = append(done, key)
		used = true
		value := ""
		switch v := raw.(type) {
		case nil:
		case string:
			value = strings.TrimSpace(v)
		default:
			s.note(r.now, "ignored", fmt.Sprintf("event %s: %s is not a date (%T)", e.ID, rem.Date, raw))
			continue
		}
		if value != "" {
			if err := campaign.CheckDate(value); err != nil {
				s.note(r.now, "ignored", fmt.Sprintf("event %s: %s: %v", e.ID, rem.Date, err))
				continue
			}
		}
		old, had := s.Dates[key]
		if value == old && (had || value == "") {
			continue
		}
		// The reminders done for the old date do not carry over.
		s.RemindersDone = slices.DeleteFunc(s.RemindersDone, func(d string) bool {
			id, _, _ := strings.Cut(d, "@")
			return slices.ContainsFunc(r.c.Reminders, func(x campaign.Reminder) bool { return x.ID == id && x.DateKey() == key })
		})
		if value == "" {
			delete(s.Dates, key)
			s.note(r.now, "reminder", fmt.Sprintf("%s cleared: its reminders are cancelled", key))
			continue
		}
		if s.Dates == nil {
			s.Dates = map[string]string{}
		}
		s.Dates[key] = value
		verb := "set"
		if had {
			verb = "moved from " + old + " to"
		}
		s.note(r.now, "reminder", fmt.Sprintf("%s %s %s", key, verb, value))
	}
	return used
}
