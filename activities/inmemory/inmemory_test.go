package inmemory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

var monday = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// newCRM is a CRM with the shipped campaign and a clock the test moves.
func newCRM(t *testing.T) (*inmemory.CRM, *time.Time) {
	t.Helper()
	reg := campaign.NewRegistry()
	require.NoError(t, reg.LoadEmbedded())
	c := inmemory.New(reg)
	now := monday
	c.SetClock(func() time.Time { return now })
	return c, &now
}

func welcome(key, to string) activities.SendEmailInput {
	return activities.SendEmailInput{Key: key, CustomerID: "c1", To: to, CampaignID: "saas-lifecycle", CampaignVersion: "v1",
		Template: "welcome", Step: "welcome", Data: campaign.TemplateData{FirstName: "Ada", Email: to}}
}

func TestLoadCampaignIsWithoutBodiesAndWaitsWhenMissing(t *testing.T) {
	c, now := newCRM(t)
	a := c.Activities()
	camp, err := a.LoadCampaign(t.Context(), activities.LoadCampaignInput{ID: "saas-lifecycle", Latest: true})
	require.NoError(t, err)
	assert.Empty(t, camp.Templates["welcome"].Subject, "the journey never sees template bodies")

	c.SetCampaignMissingUntil(monday.Add(time.Minute))
	_, err = a.LoadCampaign(t.Context(), activities.LoadCampaignInput{ID: "saas-lifecycle", Latest: true})
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	assert.False(t, errors.As(err, &appErr) && appErr.NonRetryable(), "retryable: the journey waits for the campaign")
	*now = monday.Add(time.Minute)
	_, err = a.LoadCampaign(t.Context(), activities.LoadCampaignInput{ID: "saas-lifecycle", Latest: true})
	require.NoError(t, err)

	_, err = a.LoadCampaign(t.Context(), activities.LoadCampaignInput{ID: "no-such-campaign"})
	require.Error(t, err)
}

func TestWritesAreIdempotentAndSeenByTheHook(t *testing.T) {
	c, _ := newCRM(t)
	var seen []string
	c.OnWrite(func(_ time.Time, w activities.CRMWrite) { seen = append(seen, w.Op()) })
	tr := &activities.TransitionInput{Key: "c1/j/transition/1", CustomerID: "c1", From: customer.StagePending, To: customer.StageTrial, At: monday}
	events := &activities.RecordEventsInput{CustomerID: "c1", Events: []activities.EventRecord{{ID: "e1", Type: customer.EventLogin}}}
	in := activities.WriteCRMInput{CustomerID: "c1", Writes: []activities.CRMWrite{{Transition: tr}, {Events: events}}}

	for range 2 { // the second batch is a retry
		res, err := c.Activities().WriteCRM(t.Context(), in)
		require.NoError(t, err)
		assert.Equal(t, 2, res.Done)
	}
	r := c.Records()
	assert.Equal(t, []string{"transition", "events", "transition", "events"}, r.Writes, "every write the CRM took")
	assert.Len(t, r.Transitions, 1, "a transition once per key")
	assert.Len(t, r.Events, 1, "an event once per id")
	assert.Equal(t, []string{"transition", "events"}, seen, "the hook sees what changed the CRM")

	fresh, err := c.Activities().RecordEvents(t.Context(), activities.RecordEventsInput{CustomerID: "c2",
		Events: []activities.EventRecord{{ID: "e1", Type: customer.EventLogin}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"e1"}, fresh.New, "event ids are per customer")
}

func TestCRMDownFailsWritesUntilItIsBack(t *testing.T) {
	c, now := newCRM(t)
	c.SetCRMDownUntil(monday.Add(time.Minute))
	in := activities.WriteCRMInput{CustomerID: "c1", Writes: []activities.CRMWrite{{Erase: &activities.EraseInput{CustomerID: "c1"}}}}
	_, err := c.Activities().WriteCRM(t.Context(), in)
	require.ErrorContains(t, err, "connection refused")
	assert.Empty(t, c.Records().Writes)

	*now = monday.Add(time.Minute)
	_, err = c.Activities().WriteCRM(t.Context(), in)
	require.NoError(t, err)
	r := c.Records()
	assert.Equal(t, []string{"c1"}, r.Erased)
	assert.Equal(t, 2, r.WriteAttempts)
}

func TestSendRendersOnceAndObeysSuppression(t *testing.T) {
	c, _ := newCRM(t)
	var mails []inmemory.Mail
	c.OnMail(func(m inmemory.Mail) { mails = append(mails, m) })
	a := c.Activities()
	ctx := context.Background()

	res, err := a.SendEmail(ctx, welcome("k1", "ada@example.com"))
	require.NoError(t, err)
	assert.Equal(t, activities.SendSent, res.Status)
	res, err = a.SendEmail(ctx, welcome("k1", "ada@example.com"))
	require.NoError(t, err)
	assert.Equal(t, activities.SendDuplicate, res.Status, "one email per key")

	require.NoError(t, a.Suppress(ctx, activities.SuppressInput{CustomerID: "c1", Email: "ADA@example.com", Reason: customer.ReasonUnsubscribed}))
	res, err = a.SendEmail(ctx, welcome("k2", "ada@example.com"))
	require.NoError(t, err)
	assert.Equal(t, activities.SendSuppressed, res.Status, "an unsubscribed address gets no marketing mail, whatever its case")

	require.Len(t, mails, 2, "the hook sees each email once")
	assert.Equal(t, activities.SendSent, mails[0].Status)
	assert.NotEmpty(t, mails[0].Subject, "rendered from the campaign")
	assert.Equal(t, customer.CategoryMarketing, mails[0].Category)
	assert.Equal(t, "address unsubscribed", mails[1].Reason)
	assert.Len(t, c.Records().Sent(), 1)
}

func TestTemplateThatDoesNotRenderFailsForGood(t *testing.T) {
	c, _ := newCRM(t)
	in := welcome("k1", "ada@example.com")
	in.Template = "no_such_template"
	_, err := c.Activities().SendEmail(t.Context(), in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.True(t, appErr.NonRetryable())
	assert.Equal(t, activities.ErrTemplate, appErr.Type())
	r := c.Records()
	require.Len(t, r.Mail, 1)
	assert.Equal(t, activities.SendFailed, r.Mail[0].Status)
}

func TestSendHookDecidesFirst(t *testing.T) {
	c, now := newCRM(t)
	c.SetSendHook(func(at time.Time, _ activities.SendEmailInput) *inmemory.Outcome {
		if at.Before(monday.Add(time.Minute)) {
			return &inmemory.Outcome{Err: errors.New("dial tcp: connection refused")}
		}
		return nil
	})
	_, err := c.Activities().SendEmail(t.Context(), welcome("k1", "ada@example.com"))
	require.ErrorContains(t, err, "connection refused")
	assert.Empty(t, c.Records().Mail)

	*now = monday.Add(time.Minute)
	res, err := c.Activities().SendEmail(t.Context(), welcome("k1", "ada@example.com"))
	require.NoError(t, err)
	assert.Equal(t, activities.SendSent, res.Status)
}

// With a policy, a marketing email whose key is new is deferred by the
// marketing mail the mailer sent to the customer (the ledger's rule, by the
// CRM's clock): nothing is sent or listed, and the same key goes out when
// the policy allows it. Transactional mail is never deferred.
func TestSendHonoursTheContactPolicy(t *testing.T) {
	c, now := newCRM(t)
	var mails []inmemory.Mail
	c.OnMail(func(m inmemory.Mail) { mails = append(mails, m) })
	a := c.Activities()
	ctx := t.Context()
	gap := &activities.ContactPolicy{MinGap: 4 * time.Hour}

	res, err := a.SendEmail(ctx, welcome("k1", "ada@example.com"))
	require.NoError(t, err)
	require.Equal(t, activities.SendSent, res.Status)

	*now = monday.Add(time.Hour)
	tips := welcome("k2", "ada@example.com")
	tips.Template, tips.Step, tips.Policy = "activation_tips", "activation_tips", gap
	res, err = a.SendEmail(ctx, tips)
	require.NoError(t, err)
	assert.Equal(t, activities.SendEmailResult{Status: activities.SendDeferred, Reason: campaign.ReasonMinGap,
		DeferredUntil: monday.Add(4 * time.Hour)}, res)
	assert.Len(t, mails, 1, "a deferred email is not listed")
	assert.Equal(t, 1, c.Records().SendAttempts["k2"], "it reached the ledger")

	// Another customer's mail does not count.
	other := tips
	other.Key, other.CustomerID, other.To = "k3", "c2", "bob@example.com"
	res, err = a.SendEmail(ctx, other)
	require.NoError(t, err)
	assert.Equal(t, activities.SendSent, res.Status)

	// The frequency cap: one email a day, and the later rule wins.
	capped := tips
	capped.Policy = &activities.ContactPolicy{MinGap: 4 * time.Hour, CapMax: 1, CapWindow: 24 * time.Hour}
	res, err = a.SendEmail(ctx, capped)
	require.NoError(t, err)
	assert.Equal(t, activities.SendDeferred, res.Status)
	assert.Equal(t, campaign.ReasonFrequencyCap, res.Reason)
	assert.Equal(t, monday.Add(24*time.Hour), res.DeferredUntil)

	// Transactional mail goes whatever the policy says.
	notice := welcome("k4", "owner@example.com")
	notice.Template, notice.Step, notice.Policy = "sales_handoff", "sales/handoff", gap
	notice.Data = campaign.TemplateData{Company: "AE", Score: 64, Extra: map[string]string{
		campaign.ExtraCustomerID: "c1", campaign.ExtraCustomerName: "Ada", campaign.ExtraCustomerEmail: "ada@example.com",
		campaign.ExtraReasons: "demo_requested (30)", campaign.ExtraScore: "64"}}
	res, err = a.SendEmail(ctx, notice)
	require.NoError(t, err)
	assert.Equal(t, activities.SendSent, res.Status)

	// Once the gap has passed, the same key is sent (not a duplicate).
	*now = monday.Add(4 * time.Hour)
	res, err = a.SendEmail(ctx, tips)
	require.NoError(t, err)
	assert.Equal(t, activities.SendSent, res.Status)
	res, err = a.SendEmail(ctx, tips)
	require.NoError(t, err)
	assert.Equal(t, activities.SendDuplicate, res.Status)
	assert.Len(t, c.Records().Sent(), 4)
}
