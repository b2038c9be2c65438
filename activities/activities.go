// Package activities are the journey's side effects: the CRM in PostgreSQL,
// email over SMTP, and lead scoring. Every activity is idempotent — a retry
// after a crash never sends a second email or writes a second row — because
// each write is keyed by a business key the workflow derives
// deterministically (send key, transition key, event id).
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
)

// Error types the workflow treats as non-retryable.
const (
	ErrBadInput = "BadInput"      // the input can never succeed
	ErrTemplate = "TemplateError" // a template does not render
)

// Activities holds what the activities need; one per worker.
type Activities struct {
	CRM       *crm.Store
	Mail      *email.Sender
	Campaigns *campaign.Registry
	Signer    email.Signer
	// PublicBaseURL is where unsubscribe links point.
	PublicBaseURL string
	// From is the sender address, used to derive Message-IDs.
	From    string
	Metrics *Metrics
}

func badInput(op string, err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", op, err), ErrBadInput, err)
}

// crmError turns a CRM error into a non-retryable one when retrying cannot
// help (invalid input, erased customer, no contact: a journey writes its
// customer's contact itself, at the signup, so a missing one will not
// appear by waiting — a journey still pending that gets an unsubscribe
// has none), and a retryable one otherwise.
func crmError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, crm.ErrInvalid) || errors.Is(err, crm.ErrKeyConflict) || errors.Is(err, crm.ErrErased) ||
		errors.Is(err, crm.ErrNotFound) {
		return badInput(op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// LoadCampaign returns a campaign definition; the result is recorded in the
// journey's history. A missing campaign is a retryable error: the journey
// waits (its pending activity shows the error in the UI) until a worker that
// has the definition picks it up, rather than failing.
//
// The journey gets the definition without template bodies: it needs only
// each template's category, the send activity renders from the registry,
// and every run's history stays small (the bodies are most of a campaign).
func (a *Activities) LoadCampaign(_ context.Context, in LoadCampaignInput) (*campaign.Campaign, error) {
	var c *campaign.Campaign
	var err error
	if in.Latest || in.Version == "" {
		c, err = a.Campaigns.Latest(in.ID)
	} else {
		c, err = a.Campaigns.Get(in.ID, in.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("load campaign: %w", err)
	}
	return c.WithoutTemplateBodies(), nil
}

// UpsertContact creates or updates the CRM contact.
func (a *Activities) UpsertContact(ctx context.Context, in Contact) error {
	err := a.CRM.UpsertContact(ctx, crm.Contact{
		CustomerID: in.CustomerID, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
		Company: in.Company, Role: in.Role, CompanySize: in.CompanySize, TimeZone: in.TimeZone,
		LeadSource: in.LeadSource, OwnerEmail: in.OwnerEmail, DeliveryOwnerEmail: in.DeliveryOwnerEmail,
		Consent: true, CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion,
	})
	if errors.Is(err, crm.ErrErased) {
		return badInput("upsert contact", err)
	}
	a.Metrics.crmWrite("upsert_contact", err)
	return crmError("upsert contact "+in.CustomerID, err)
}

// ScoreLead computes the fit part of the lead score from the CRM profile
// (lead-source trust, company size, role) under the campaign's rules. The
// behaviour part is scored inline in the workflow, because it is a pure
// function of the events the workflow already holds and an activity per
// event would cost a round trip and history events for nothing.
func (a *Activities) ScoreLead(ctx context.Context, in ScoreLeadInput) (FitScore, error) {
	c, err := a.Campaigns.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		return FitScore{}, fmt.Errorf("score lead: %w", err) // retryable: see SendEmail
	}
	contact, err := a.CRM.GetContact(ctx, in.CustomerID)
	if errors.Is(err, crm.ErrNotFound) {
		return FitScore{}, badInput("score lead", fmt.Errorf("no contact %q in the CRM", in.CustomerID))
	}
	if err != nil {
		return FitScore{}, fmt.Errorf("score lead %s: %w", in.CustomerID, err)
	}
	pts, reasons := c.Scoring.FitPoints(contact.LeadSource, contact.CompanySize, contact.Role)
	return FitScore{Points: pts, Reasons: reasons}, nil
}

// RegisterSignup does a signup's CRM work — upsert the contact, score its
// fit, record the stage change — in one activity: each step is idempotent on
// its own, and one activity instead of three is two fewer round trips
// through the Temporal server on the signup's critical path (docs/benchmarks.md).
func (a *Activities) RegisterSignup(ctx context.Context, in RegisterSignupInput) (FitScore, error) {
	if err := a.UpsertContact(ctx, in.Contact); err != nil {
		return FitScore{}, err
	}
	fit, err := a.ScoreLead(ctx, ScoreLeadInput{
		CustomerID: in.Contact.CustomerID, CampaignID: in.Contact.CampaignID, CampaignVersion: in.Contact.CampaignVersion,
	})
	if err != nil {
		return FitScore{}, err
	}
	if in.Transition != nil {
		if err := a.RecordTransition(ctx, *in.Transition); err != nil {
			return FitScore{}, err
		}
	}
	return fit, nil
}

// RecordEvents writes a batch to the CRM event log and returns the IDs it
// had not seen before this call (in.Key: a retry gets the same answer).
func (a *Activities) RecordEvents(ctx context.Context, in RecordEventsInput) (RecordEventsResult, error) {
	events := make([]crm.Event, len(in.Events))
	for i, e := range in.Events {
		events[i] = crm.Event{ID: e.ID, CustomerID: in.CustomerID, Type: e.Type, OccurredAt: e.At,
			Properties: e.Properties, IgnoredReason: e.IgnoredReason}
	}
	fresh, err := a.CRM.RecordNewEvents(ctx, in.Key, events)
	a.Metrics.crmWrite("record_events", err)
	if err != nil {
		return RecordEventsResult{}, crmError("record events for "+in.CustomerID, err)
	}
	a.Metrics.eventsRecorded(len(fresh), len(events))
	return RecordEventsResult{New: fresh}, nil
}

// RecordTransition writes a stage change.
func (a *Activities) RecordTransition(ctx context.Context, in TransitionInput) error {
	err := a.CRM.RecordTransition(ctx, crm.Transition{
		Key: in.Key, CustomerID: in.CustomerID, From: string(in.From), To: string(in.To), Reason: in.Reason,
		CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion, At: in.At,
	})
	a.Metrics.crmWrite("record_transition", err)
	return crmError("record transition "+in.Key, err)
}

// RecordScore writes a score to the score history.
func (a *Activities) RecordScore(ctx context.Context, in ScoreInput) error {
	err := a.CRM.RecordScore(ctx, crm.ScoreEntry{Key: in.Key, CustomerID: in.CustomerID, Score: in.Score,
		Behaviour: in.Behaviour, Fit: in.Fit, Reason: in.Reason, At: in.At})
	a.Metrics.crmWrite("record_score", err)
	return crmError("record score "+in.Key, err)
}

// CreateHandoff writes the sales handoff with its reasons.
func (a *Activities) CreateHandoff(ctx context.Context, in HandoffInput) error {
	reasons := make([]crm.HandoffReason, len(in.Reasons))
	for i, r := range in.Reasons {
		reasons[i] = crm.HandoffReason{EventType: r.Source, Points: r.Points}
	}
	err := a.CRM.CreateHandoff(ctx, crm.Handoff{Key: in.Key, CustomerID: in.CustomerID, Score: in.Score,
		Reasons: reasons, OwnerEmail: in.OwnerEmail, SLADueAt: in.SLADue})
	a.Metrics.crmWrite("create_handoff", err)
	return crmError("create handoff "+in.Key, err)
}

// SetHandoffStatus moves a handoff along.
func (a *Activities) SetHandoffStatus(ctx context.Context, in HandoffStatusInput) error {
	err := a.CRM.SetHandoffStatus(ctx, in.Key, in.Status)
	if errors.Is(err, crm.ErrHandoffClosed) {
		// A closed handoff (won/lost) stays closed; a late status is noted
		// by the workflow, not retried.
		return nil
	}
	a.Metrics.crmWrite("handoff_status", err)
	return crmError("set handoff "+in.Key+" to "+in.Status, err)
}

// CreateTask writes a task for an account owner.
func (a *Activities) CreateTask(ctx context.Context, in TaskInput) error {
	err := a.CRM.CreateTask(ctx, crm.Task{Key: in.Key, CustomerID: in.CustomerID, OwnerEmail: in.OwnerEmail,
		Kind: in.Kind, Title: in.Title, DueAt: in.DueAt})
	a.Metrics.crmWrite("create_task", err)
	return crmError("create task "+in.Key, err)
}

// Suppress puts an address on the suppression list.
func (a *Activities) Suppress(ctx context.Context, in SuppressInput) error {
	err := a.CRM.Suppress(ctx, in.Email, in.CustomerID, in.Reason)
	a.Metrics.crmWrite("suppress", err)
	return crmError("suppress "+in.CustomerID, err)
}

// EraseContact deletes the customer's personal data and keeps a tombstone.
func (a *Activities) EraseContact(ctx context.Context, in EraseInput) error {
	err := a.CRM.Erase(ctx, in.CustomerID)
	if errors.Is(err, crm.ErrNotFound) {
		return nil // nothing stored: nothing to erase
	}
	a.Metrics.crmWrite("erase", err)
	return crmError("erase "+in.CustomerID, err)
}

// SendEmail sends one journey email exactly once per key:
//
//  1. render the template (a template that does not render is a
//     non-retryable error naming the template);
//  2. claim the key in the CRM send ledger — a key already sent, failed or
//     suppressed is never sent again, and the suppression list is checked
//     here as well as in the workflow;
//  3. send over the pooled SMTP connections with a Message-ID derived from
//     the key;
//  4. mark it sent straight after the SMTP reply.
//
// Permanent SMTP failures (5xx, invalid address) are recorded and returned
// as a "failed" result, so the workflow moves on without a retry storm;
// transient ones return an error and Temporal retries with backoff.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) (SendEmailResult, error) {
	c, err := a.Campaigns.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		// Retryable, like LoadCampaign: during a rolling deploy another
		// worker that has this version picks the send up; no step is lost.
		return SendEmailResult{}, fmt.Errorf("send email: %w", err)
	}
	data := in.Data
	unsubscribe := ""
	if tpl, ok := c.Templates[in.Template]; ok && tpl.Category != campaign.Transactional {
		unsubscribe = a.Signer.UnsubscribeURL(a.PublicBaseURL, in.CustomerID)
		data.UnsubscribeURL = unsubscribe
	}
	r, err := c.Render(in.Template, data)
	if err != nil {
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTemplate, err)
	}
	messageID := email.MessageIDFor(in.Key, a.From)
	lease := 2 * time.Minute
	if info := activity.GetInfo(ctx); info.StartToCloseTimeout > 0 {
		lease = info.StartToCloseTimeout + 5*time.Second
	}
	claim, err := a.CRM.ClaimSend(ctx, crm.SendClaim{
		Key: in.Key, CustomerID: in.CustomerID, Email: in.To, Template: in.Template,
		Category: string(r.Category), MessageID: messageID, Lease: lease,
	})
	if err != nil {
		return SendEmailResult{}, crmError("claim send "+in.Key, err)
	}
	switch claim {
	case crm.ClaimAlreadySent:
		a.Metrics.Email("duplicate")
		return SendEmailResult{Status: SendDuplicate, MessageID: messageID}, nil
	case crm.ClaimFailed:
		return SendEmailResult{Status: SendFailed, Reason: "failed permanently earlier"}, nil
	case crm.ClaimSuppressed:
		a.Metrics.Email("suppressed")
		return SendEmailResult{Status: SendSuppressed, Reason: "address suppressed"}, nil
	case crm.ClaimInProgress:
		return SendEmailResult{}, fmt.Errorf("send %s: another attempt is in flight; retry later", in.Key)
	}
	err = a.Mail.Send(ctx, email.Message{
		MessageID: messageID, To: in.To, ToName: in.ToName, Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		UnsubscribeURL: unsubscribe, Category: string(r.Category),
		Headers: map[string]string{"X-Journey-Step": in.Step, "X-Campaign": in.CampaignID + "@" + in.CampaignVersion},
	})
	if err != nil {
		if email.IsPermanent(err) {
			a.Metrics.Email("failed")
			if merr := a.CRM.MarkFailed(ctx, in.Key, err.Error(), true); merr != nil {
				return SendEmailResult{}, fmt.Errorf("mark send %s failed: %w", in.Key, merr)
			}
			return SendEmailResult{Status: SendFailed, Reason: err.Error()}, nil
		}
		_ = a.CRM.MarkFailed(ctx, in.Key, err.Error(), false)
		return SendEmailResult{}, fmt.Errorf("send %s: %w", in.Key, err)
	}
	// Mark at once: the window between the SMTP reply and this write is the
	// only one in which a crash can cause a second (same Message-ID) send.
	if err := a.CRM.MarkSent(ctx, in.Key, time.Now()); err != nil {
		return SendEmailResult{}, fmt.Errorf("mark send %s sent: %w", in.Key, err)
	}
	a.Metrics.Email("sent")
	return SendEmailResult{Status: SendSent, MessageID: messageID}, nil
}
