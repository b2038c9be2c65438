package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// Sending. An email is an activity the journey starts and then waits for
// alongside its signals, one at a time, in the order the journey asked for
// them: an unsubscribe, a bounce, a purchase or an erase that arrives while
// a send is waiting for SMTP — or retrying for hours through an outage —
// is applied at once and cancels the send when it no longer fits. The send
// ledger's claim checks the same in the database (activities.SendEmail), so
// an attempt that was already running when the signal came does not send
// either, once the CRM has the change.

// sendTimeout bounds how long a send may keep retrying (SMTP or database
// away): an email a day late is better not sent; the timeline says so.
const sendTimeout = 24 * time.Hour

// sendRequest is an email the journey wants sent.
type sendRequest struct {
	in    activities.SendEmailInput
	label string // for the timeline: "welcome (welcome)", "sales-handoff to owner@…"
	// toCustomer: the email goes to the customer (not to an owner about
	// them); marketing: it is marketing mail. Both decide what stops it.
	toCustomer, marketing bool
	stageSeq              int
	at                    time.Time // journey time it was asked for (the frequency cap)
}

// sendInFlight is the send the journey waits for.
type sendInFlight struct {
	req    sendRequest
	done   workflow.Future
	cancel workflow.CancelFunc
	// stopped says why the journey cancelled it ("" while it is wanted).
	stopped string
}

// requestSend queues an email.
func (j *journey) requestSend(req sendRequest) { j.sends = append(j.sends, req) }

// startNextSend starts the first queued email that is still wanted.
func (j *journey) startNextSend(ctx workflow.Context) {
	for j.inFlight == nil && len(j.sends) > 0 {
		req := j.sends[0]
		j.sends = j.sends[1:]
		if why := j.unwanted(req); why != "" {
			j.s.note(j.now(ctx), "skipped", fmt.Sprintf("%s: %s", req.label, why))
			continue
		}
		sctx, cancel := workflow.WithCancel(j.mailCtx(ctx))
		j.inFlight = &sendInFlight{req: req, done: workflow.ExecuteActivity(sctx, a.SendEmail, req.in), cancel: cancel}
	}
}

// reviewSends cancels the send in flight and drops queued ones that no
// longer fit, after signals changed the state.
func (j *journey) reviewSends(ctx workflow.Context) {
	if f := j.inFlight; f != nil && f.stopped == "" {
		if why := j.unwanted(f.req); why != "" {
			f.stopped = why
			f.cancel()
		}
	}
	kept := j.sends[:0]
	for _, req := range j.sends {
		if why := j.unwanted(req); why != "" {
			j.s.note(j.now(ctx), "skipped", fmt.Sprintf("%s: %s", req.label, why))
			continue
		}
		kept = append(kept, req)
	}
	j.sends = kept
}

// unwanted says why an email must not go out now, or "".
func (j *journey) unwanted(req sendRequest) string {
	s := j.s
	switch {
	case s.Stage == customer.StageErased:
		return "customer erased"
	case req.toCustomer && s.MailSuppressed:
		return "address " + s.SuppressedReason
	case req.toCustomer && req.marketing && s.Stage == customer.StageUnsubscribed:
		return "customer unsubscribed"
	case req.toCustomer && req.marketing && req.stageSeq != 0 && s.StageSeq != req.stageSeq:
		return fmt.Sprintf("customer moved on to %s", s.Stage)
	}
	return ""
}

// collectSend takes the outcome of the send in flight once it is in.
func (j *journey) collectSend(ctx workflow.Context) {
	f := j.inFlight
	if f == nil || !f.done.IsReady() {
		return
	}
	j.inFlight = nil
	f.cancel()
	now := j.now(ctx)
	var res activities.SendEmailResult
	err := f.done.Get(ctx, &res)
	var cancelled *temporal.CanceledError
	switch {
	case errors.As(err, &cancelled) && f.stopped != "":
		j.s.note(now, "cancelled", fmt.Sprintf("%s: %s", f.req.label, f.stopped))
		return
	case err != nil:
		workflow.GetLogger(ctx).Error("send failed", "key", f.req.in.Key, "error", err)
		j.s.note(now, "error", fmt.Sprintf("send %s: %v", f.req.label, err))
		return
	}
	switch res.Status {
	case activities.SendDeferred:
		// Another sender (a broadcast) mailed the customer moments ago: the
		// ledger says when this one may go; plan it again for then, under
		// its key.
		until := j.s.journeyTime(res.DeferredUntil)
		in := f.req.in
		j.s.Deferred = append(j.s.Deferred, DeferredSend{
			Key: in.Key, StepID: in.Step, Template: in.Template, Category: customer.CategoryMarketing,
			StageSeq: f.req.stageSeq, At: until, Reason: res.Reason,
		})
		j.s.note(now, "deferred", fmt.Sprintf("%s: the send ledger holds it until %s (%s, across every sender)",
			f.req.label, until.In(j.loc).Format("Mon 2006-01-02 15:04 MST"), res.Reason))
		return
	case activities.SendSent, activities.SendDuplicate:
		if f.req.marketing && f.req.toCustomer {
			capMax := 0
			if fc := j.c.Sending.FrequencyCap; fc != nil {
				capMax = fc.Max
			}
			j.s.recordSend(f.req.at, capMax)
		}
	case activities.SendBounced:
		// The activity put the address on the suppression list already.
		if f.req.toCustomer {
			j.s.MailSuppressed, j.s.SuppressedReason = true, customer.ReasonBounced
			j.s.note(now, "suppressed", "no more email: address bounced (refused by the mail server)")
			j.reviewSends(ctx)
		}
	}
	detail := fmt.Sprintf("%s: %s", f.req.label, res.Status)
	if res.Reason != "" {
		detail += " " + res.Reason
	}
	j.s.note(now, "email", detail)
}

// mailCtx: transient SMTP or database failures retry with backoff, for up
// to sendTimeout; permanent ones come back as a result, not an error, so
// there is no retry storm. A cancelled send is given up at once (the
// ledger's claim keeps a running attempt from sending).
func (j *journey) mailCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second, // also bounds the send claim's lease
		ScheduleToCloseTimeout: sendTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrBadInput, activities.ErrTemplate},
		},
	})
}

// sendStep asks for a campaign email to the customer (a sequence step, a
// holiday greeting, an ask, a win-back).
func (j *journey) sendStep(ctx workflow.Context, act action) {
	now := j.now(ctx)
	switch {
	case j.s.Contact.Email == "":
		j.s.note(now, "skipped", act.label()+": no address")
		return
	case j.s.MailSuppressed:
		j.s.note(now, "skipped", act.label()+": address "+j.s.SuppressedReason)
		return
	}
	extra := map[string]string{campaign.ExtraReferralCode: referralCode(j.s.CustomerID)}
	if act.Date != "" {
		extra[campaign.ExtraDate] = act.Date
	}
	in := j.sendInput(act.Key, act.StepID, act.Template, j.s.Contact.Email, displayName(j.s), extra)
	stageSeq := j.s.StageSeq
	if act.AnyStage {
		// A reminder is about a date, not a stage: leaving the stage does
		// not cancel it (the ledger's stage check neither).
		stageSeq, in.StageSeq = 0, 0
	}
	if j.v11 && act.Category == customer.CategoryMarketing {
		in.Policy = j.ledgerPolicy()
		if len(act.Deferral) > 0 {
			in.Due, in.Deferral = act.Due, act.Deferral
		}
	}
	j.requestSend(sendRequest{
		in:         in,
		label:      act.label(),
		toCustomer: true, marketing: act.Category == customer.CategoryMarketing,
		stageSeq: stageSeq, at: now,
	})
}

// sendInternal asks for a transactional notice to an owner about the
// customer.
func (j *journey) sendInternal(ctx workflow.Context, step, template, to string) {
	if template == "" || to == "" {
		return
	}
	reasons := j.s.topReasons(j.c.Sales.TopReasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s (%d)", r.Source, r.Points)
	}
	extra := map[string]string{
		"CustomerID": j.s.CustomerID, "CustomerName": displayName(j.s), "CustomerEmail": j.s.Contact.Email,
		"Reasons": strings.Join(parts, ", "), "Score": fmt.Sprint(j.s.score()),
	}
	key := sendKey(j.s, fmt.Sprintf("%s#%d/%s", j.s.Stage, j.s.StageSeq, step))
	j.requestSend(sendRequest{
		in:    j.sendInput(key, step, template, to, "", extra),
		label: step + " to " + to, stageSeq: j.s.StageSeq, at: j.now(ctx),
	})
}

// ledgerPolicy is the campaign's cap and gap for the send ledger's check,
// in real time: a time-scaled journey's policy is its scale shorter.
func (j *journey) ledgerPolicy() *activities.ContactPolicy {
	sc := j.c.Sending
	scale := max(j.s.TimeScale, 1)
	inReal := func(d campaign.Duration) time.Duration { return time.Duration(float64(d.D()) / scale) }
	p := &activities.ContactPolicy{MinGap: inReal(sc.MinGap)}
	if fc := sc.FrequencyCap; fc != nil && fc.Max >= 1 && fc.Window > 0 {
		p.CapMax, p.CapWindow = fc.Max, inReal(fc.Window)
	}
	if p.MinGap <= 0 && p.CapMax == 0 {
		return nil
	}
	return p
}

func (j *journey) sendInput(key, step, template, to, toName string, extra map[string]string) activities.SendEmailInput {
	c := j.s.Contact
	return activities.SendEmailInput{
		Key: key, CustomerID: j.s.CustomerID, To: to, ToName: toName,
		CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion, Template: template, Step: step,
		Data: campaign.TemplateData{
			FirstName: c.FirstName, LastName: c.LastName, Email: c.Email, Company: c.Company,
			Stage: string(j.s.Stage), Score: j.s.score(), Extra: extra,
		},
		Journey: j.s.Journey, StageSeq: j.s.StageSeq,
	}
}
