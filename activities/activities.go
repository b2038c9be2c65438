// Package activities are the journey's side effects: the campaign
// definition, the CRM in PostgreSQL (WriteCRM: a batch of writes in order)
// and email over SMTP (SendEmail). Every activity is idempotent — a retry
// after a crash never sends a second email or writes a second row —
// because each write is keyed by a business key the workflow derives
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

// SendEmail sends one journey email exactly once per key:
//
//  1. render the template (a template that does not render is a
//     non-retryable error naming the template);
//  2. claim the key in the CRM send ledger — a key already sent, failed or
//     suppressed is never sent again; in the same transaction the claim
//     checks that the customer may still be mailed: the suppression list,
//     an erase, and for marketing mail a later stage of the journey (a
//     purchase while this send waited or retried cancels it);
//  3. send over the pooled SMTP connections with a Message-ID derived from
//     the key;
//  4. mark it sent straight after the SMTP reply.
//
// Permanent SMTP failures (5xx) are recorded and returned as a result, not
// an error, so the workflow moves on without a retry storm; a refused
// recipient is a hard bounce and the address is suppressed at once.
// Transient failures (4xx, network) return an error and Temporal retries
// with backoff.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) (SendEmailResult, error) {
	c, err := a.Campaigns.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		// Retryable, like LoadCampaign: during a rolling deploy another
		// worker that has this version picks the send up; no step is lost.
		a.Metrics.Email("retry")
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
		a.Metrics.Email("failed")
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
		Journey: in.Journey, StageSeq: in.StageSeq,
	})
	if err != nil {
		if !isPermanent(crmError("", err)) {
			a.Metrics.Email("retry")
		}
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
		return SendEmailResult{Status: SendSuppressed, Reason: "address suppressed or customer erased"}, nil
	case crm.ClaimCancelled:
		a.Metrics.Email("cancelled")
		return SendEmailResult{Status: SendCancelled, Reason: "the customer left the stage it was planned in"}, nil
	case crm.ClaimInProgress:
		a.Metrics.Email("retry")
		return SendEmailResult{}, fmt.Errorf("send %s: another attempt is in flight; retry later", in.Key)
	}
	err = a.Mail.Send(ctx, email.Message{
		MessageID: messageID, To: in.To, ToName: in.ToName, Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		UnsubscribeURL: unsubscribe, Category: string(r.Category),
		Headers: map[string]string{"X-Journey-Step": in.Step, "X-Campaign": in.CampaignID + "@" + in.CampaignVersion},
	})
	if err != nil {
		return a.sendFailed(ctx, in, err)
	}
	// Mark at once: the window between the SMTP reply and this write is the
	// only one in which a crash can cause a second (same Message-ID) send.
	if err := a.CRM.MarkSent(ctx, in.Key, time.Now()); err != nil {
		a.Metrics.Email("retry")
		return SendEmailResult{}, fmt.Errorf("mark send %s sent: %w", in.Key, err)
	}
	a.Metrics.Email("sent")
	return SendEmailResult{Status: SendSent, MessageID: messageID}, nil
}

// sendFailed records a failed send. A refused recipient (a hard bounce)
// also suppresses the address, so no later email, journey or broadcast,
// tries it again; other permanent failures are recorded for this key only;
// transient ones are retried by Temporal.
func (a *Activities) sendFailed(ctx context.Context, in SendEmailInput, err error) (SendEmailResult, error) {
	if !email.IsPermanent(err) {
		a.Metrics.Email("retry")
		_ = a.CRM.MarkFailed(ctx, in.Key, err.Error(), false)
		return SendEmailResult{}, fmt.Errorf("send %s: %w", in.Key, err)
	}
	if merr := a.CRM.MarkFailed(ctx, in.Key, err.Error(), true); merr != nil {
		a.Metrics.Email("retry")
		return SendEmailResult{}, fmt.Errorf("mark send %s failed: %w", in.Key, merr)
	}
	if email.IsHardBounce(err) {
		if serr := a.CRM.Suppress(ctx, in.To, in.CustomerID, crm.ReasonBounced); serr != nil {
			a.Metrics.Email("retry")
			return SendEmailResult{}, fmt.Errorf("suppress bounced address of send %s: %w", in.Key, serr)
		}
		a.Metrics.Email("bounced")
		return SendEmailResult{Status: SendBounced, Reason: err.Error()}, nil
	}
	a.Metrics.Email("failed")
	return SendEmailResult{Status: SendFailed, Reason: err.Error()}, nil
}
