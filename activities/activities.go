// Package activities are the workflows' side effects: for the journey the
// campaign definition, the CRM in PostgreSQL (WriteCRM: a batch of writes
// in order) and email over SMTP (SendEmail); for a broadcast a page of its
// segment (BroadcastSendPage). Both send through one protocol, package
// sendonce. Every activity is idempotent — a retry after a crash never
// sends a second email or writes a second row — because each write is
// keyed by a business key the workflow derives deterministically (send
// key, transition key, event id).
package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/sendonce"
)

// Error types the workflow treats as non-retryable.
const (
	ErrBadInput = "BadInput"      // the input can never succeed
	ErrTemplate = "TemplateError" // a template does not render
)

// Activities holds what the activities need; one per worker. Register it
// with worker.RegisterActivity: every exported method is an activity.
type Activities struct {
	CRM *crm.Store
	// Mail sends the messages; *email.Sender (pooled SMTP) in production.
	Mail      sendonce.Mailer
	Campaigns *campaign.Registry
	Signer    email.Signer
	// PublicBaseURL is where unsubscribe links point.
	PublicBaseURL string
	// From is the sender address, used to derive Message-IDs.
	From string
	// Concurrency is how many broadcast messages the worker sends at once
	// (sendonce.New): the SMTP pool size, and the bound on messages a
	// crash can leave in doubt. 0 means email.DefaultConnections.
	Concurrency int
	Metrics     *Metrics

	sendOnce sync.Once
	outbox   *sendonce.Sender
}

// sender is the worker's one send protocol, shared by journey mail and
// broadcast pages (and with it the broadcasts' send slots).
func (a *Activities) sender() *sendonce.Sender {
	a.sendOnce.Do(func() { a.outbox = sendonce.New(a.CRM, a.Mail, a.Concurrency, a.Metrics) })
	return a.outbox
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

// sendLease is how long a send's ledger claim holds: the activity's
// start-to-close timeout and a margin, so that no other attempt takes the
// send over while this one may still be sending.
func sendLease(ctx context.Context) time.Duration {
	if info := activity.GetInfo(ctx); info.StartToCloseTimeout > 0 {
		return info.StartToCloseTimeout + 5*time.Second
	}
	return 2 * time.Minute
}

// SendEmail sends one journey email exactly once per key: it renders the
// template (a template that does not render is a non-retryable error naming
// the template) and hands the email to the send protocol
// (sendonce.Sender.Send): claim the key in the CRM send ledger — which
// also checks that the customer may still be mailed: the suppression list,
// an erase, and for marketing mail a later stage of the journey (a purchase
// while this send waited or retried cancels it) — send over the pooled
// SMTP connections with a Message-ID derived from the key, mark it sent
// straight after the SMTP reply.
//
// With in.Policy, a marketing email whose key is new is checked by the
// ledger against every marketing email the customer got, journey mail and
// broadcasts alike: when the minimum gap or the frequency cap does not
// allow it now, nothing is sent or recorded and the result is SendDeferred
// with DeferredUntil and the rule as Reason; the workflow sends it then,
// under the same key.
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
		a.Metrics.Email(string(sendonce.Retry))
		return SendEmailResult{}, fmt.Errorf("send email: %w", err)
	}
	data := in.Data
	unsubscribe := ""
	if tpl, ok := c.Templates[in.Template]; ok && tpl.IsMarketing() {
		unsubscribe = a.Signer.UnsubscribeURL(a.PublicBaseURL, in.CustomerID)
		data.UnsubscribeURL = unsubscribe
	}
	r, err := c.Render(in.Template, data)
	if err != nil {
		a.Metrics.Email(string(sendonce.Failed))
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTemplate, err)
	}
	messageID := email.MessageIDFor(in.Key, a.From)
	lease := sendLease(ctx)
	res, err := a.sender().Send(ctx, sendonce.Letter{
		Claim: crm.SendClaim{
			Key: in.Key, CustomerID: in.CustomerID, Email: in.To, Template: in.Template,
			Category: string(r.Category), MessageID: messageID, Lease: lease,
			Journey: in.Journey, StageSeq: in.StageSeq, Policy: in.Policy.Ledger(),
		},
		Message: email.Message{
			MessageID: messageID, To: in.To, ToName: in.ToName, Subject: r.Subject, Text: r.Text, HTML: r.HTML,
			UnsubscribeURL: unsubscribe, Category: string(r.Category),
			Headers: map[string]string{"X-Journey-Step": in.Step, "X-Campaign": in.CampaignID + "@" + in.CampaignVersion},
		},
	})
	if errors.Is(err, sendonce.ErrRefused) {
		return SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrBadInput, err)
	}
	if err != nil {
		return SendEmailResult{}, err
	}
	out := SendEmailResult{Reason: res.Reason}
	switch res.Outcome {
	case sendonce.Sent:
		out.Status, out.MessageID = SendSent, messageID
	case sendonce.Duplicate:
		out.Status, out.MessageID = SendDuplicate, messageID
	case sendonce.Suppressed:
		out.Status = SendSuppressed
	case sendonce.Cancelled:
		out.Status = SendCancelled
	case sendonce.Bounced:
		out.Status = SendBounced
	case sendonce.Failed:
		out.Status = SendFailed
	case sendonce.Deferred:
		out.Status, out.DeferredUntil = SendDeferred, res.Until
	default:
		return SendEmailResult{}, fmt.Errorf("send %s: unexpected outcome %q", in.Key, res.Outcome)
	}
	return out, nil
}
