package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/report"
	"github.com/acme/lifecycle/sendonce"
)

// FunnelReportTemplate names the report email in the send ledger.
const FunnelReportTemplate = "funnel_report"

// FunnelReportInput asks SendFunnelReport for the report of the period
// [Until-Period, Until), compared with the period before it.
type FunnelReportInput struct {
	// ReportID names this report (the run's workflow ID): its email is
	// sent once per ReportID.
	ReportID string `json:"report_id"`
	// CampaignID limits the report to one campaign, whose latest version's
	// targets it is measured against; empty: every customer, no targets.
	CampaignID string        `json:"campaign_id,omitempty"`
	To         string        `json:"to"`
	Until      time.Time     `json:"until"`
	Period     time.Duration `json:"period"`
}

// FunnelReportResult says what the report found and what became of its
// email.
type FunnelReportResult struct {
	Customers   int      `json:"customers"`
	BelowTarget []string `json:"below_target"`
	// Status is SendSent, SendDuplicate (an earlier attempt sent it),
	// SendSuppressed or SendFailed.
	Status string `json:"status"`
}

// SendFunnelReport reads this period's and the previous period's funnel
// from the CRM, measures it against the campaign's stage targets and emails
// the report to the marketing owner, once per ReportID: a transactional
// email (no unsubscribe link; the owner is staff), sent with the send
// protocol of every other email under the key "system/report/<ReportID>".
func (a *Activities) SendFunnelReport(ctx context.Context, in FunnelReportInput) (FunnelReportResult, error) {
	if err := errors.Join(customer.CheckEmail("to", in.To), customer.CheckLine("report_id", in.ReportID)); err != nil {
		return FunnelReportResult{}, badInput("funnel report", err)
	}
	if in.Period <= 0 || in.Until.IsZero() || in.ReportID == "" {
		return FunnelReportResult{}, badInput("funnel report", fmt.Errorf("report_id, until and a positive period are required"))
	}
	var targets []campaign.Target
	if in.CampaignID != "" {
		c, err := a.Campaigns.Latest(in.CampaignID)
		if err != nil {
			return FunnelReportResult{}, badInput("funnel report", err)
		}
		targets = c.Targets
	}
	since := in.Until.Add(-in.Period)
	q := crm.FunnelQuery{Since: since, Until: in.Until, CampaignID: in.CampaignID}
	cur, err := a.CRM.Funnel(ctx, q)
	if err != nil {
		return FunnelReportResult{}, fmt.Errorf("funnel report: %w", err)
	}
	q.Since, q.Until = report.PreviousPeriod(since, in.Until)
	prev, err := a.CRM.Funnel(ctx, q)
	if err != nil {
		return FunnelReportResult{}, fmt.Errorf("funnel report: previous period: %w", err)
	}
	r := report.Build(cur, &prev, targets)
	var text bytes.Buffer
	if err := report.WriteText(&text, r); err != nil {
		return FunnelReportResult{}, err
	}
	// Every part of the subject is ours (dates, counts, a validated
	// campaign id): nothing a caller wrote reaches the header.
	subject := fmt.Sprintf("Funnel %s to %s: %d customers, %d below target",
		since.Format(time.DateOnly), in.Until.Format(time.DateOnly), cur.Customers, len(r.BelowTarget))

	key := "system/report/" + in.ReportID
	messageID := email.MessageIDFor(key, a.From)
	lease := sendLease(ctx)
	res, err := a.sender().Send(ctx, sendonce.Letter{
		Claim: crm.SendClaim{
			Key: key, CustomerID: customer.ReservedCustomerID, Email: in.To, Template: FunnelReportTemplate,
			Category: string(customer.CategoryTransactional), MessageID: messageID, Lease: lease,
		},
		Message: email.Message{
			MessageID: messageID, To: in.To, Subject: subject, Text: text.String(),
			Category: string(customer.CategoryTransactional),
			Headers:  map[string]string{"X-Report": "funnel"},
		},
	})
	if errors.Is(err, sendonce.ErrRefused) {
		return FunnelReportResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrBadInput, err)
	}
	if err != nil {
		return FunnelReportResult{}, err
	}
	out := FunnelReportResult{Customers: cur.Customers, BelowTarget: r.BelowTarget}
	switch res.Outcome {
	case sendonce.Sent:
		out.Status = SendSent
	case sendonce.Duplicate:
		out.Status = SendDuplicate
	case sendonce.Suppressed, sendonce.Cancelled:
		out.Status = SendSuppressed
	default:
		out.Status = SendFailed
	}
	return out, nil
}
