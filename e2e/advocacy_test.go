package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestDetractorAndRenewalReminderOnTheRealStack: an NPS detractor's answer
// opens a CRM task for the owner and emails them, and tags the contact; a
// renewal date the CRM sends as profile_updated brings the renewal
// reminder with the date in it. One journey day is one second.
func TestDetractorAndRenewalReminderOnTheRealStack(t *testing.T) {
	t.Parallel()
	s := newStack(t, scale)
	app := s.StartWorker(t)
	ctx := context.Background()
	id := "adv-" + testenv.RandomID(5)
	st := s.starter()
	lead := hotLead(id)
	lead.OwnerEmail = "kim-" + id + "@acme.example"
	_, err := st.Signup(ctx, lead)
	require.NoError(t, err)
	s.WaitMail(t, lead.Email, "your trial has started", 30*time.Second)

	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-nps", Type: customer.EventNPSAnswered, At: time.Now(),
		Properties: map[string]any{"score": 2}}))
	s.WaitMail(t, lead.OwnerEmail, "NPS detractor", 30*time.Second)
	var kind, title, owner string
	stacktest.WaitFor(t, 30*time.Second, "the detractor task in the CRM", func() (bool, string) {
		err := app.CRM.Pool().QueryRow(ctx, `SELECT kind, title, owner_email FROM tasks WHERE customer_id = $1`, id).Scan(&kind, &title, &owner)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	require.Equal(t, customer.TaskDetractorFollowUp, kind)
	require.Contains(t, title, "NPS answer 2")
	require.Equal(t, lead.OwnerEmail, owner)
	stacktest.WaitFor(t, 30*time.Second, "the detractor tag", func() (bool, string) {
		c, err := app.CRM.GetContact(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		for _, tag := range c.Tags {
			if tag == customer.TagDetractor {
				return true, ""
			}
		}
		return false, "no detractor tag yet"
	})

	// The renewal 35 journey days ahead: the reminder 30 days before it
	// comes about five seconds later (a little more if the frequency cap
	// holds it).
	renewal := time.Now().Add(35 * 24 * time.Hour).UTC().Format(time.DateOnly)
	require.NoError(t, st.Events(ctx, id, workflows.Event{ID: id + "-renewal", Type: customer.EventProfileUpdated, At: time.Now(),
		Properties: map[string]any{"renewal_date": renewal}}))
	reminder := s.WaitMail(t, lead.Email, "plan renews on", 60*time.Second)
	want, err := time.Parse(time.DateOnly, renewal)
	require.NoError(t, err)
	require.Contains(t, reminder.Subject, want.Format("2 January 2006"))
	s.recordHistories(t, id, "advocacy-reminders")
}
