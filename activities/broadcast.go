package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/sendonce"
)

// Tuning of BroadcastSendPage.
const (
	// broadcastLeaseMargin is added to the heartbeat timeout for a claim's
	// lease: after a crash the retry starts about a heartbeat timeout
	// later and waits at most this long for the dead attempt's claims to
	// lapse.
	broadcastLeaseMargin = 10 * time.Second
	// broadcastHeartbeatEvery is how often the position is recorded (the
	// SDK sends it to the server at most every 0.8 × heartbeat timeout).
	broadcastHeartbeatEvery = time.Second
)

// broadcastHeartbeat is a page attempt's position: every recipient up to
// Cursor (inclusive) is done and counted in Result.
type broadcastHeartbeat struct {
	// Start is the page's starting cursor (BroadcastPageInput.Cursor).
	Start  string              `json:"start"`
	Cursor string              `json:"cursor"`
	Result BroadcastPageResult `json:"result"`
}

// BroadcastSendPage sends one page of a broadcast: the contacts of the
// segment after in.Cursor, at most PageSize of them. One SQL statement
// returns the page with the per-recipient rules applied
// (crm.Store.SegmentPage: erased, consent, suppression list, frequency
// cap, minimum gap, segment filters, what the ledger holds for this
// broadcast; the claims check the cap and the gap again); the
// page is then sent with sendonce.Sender.SendBatch, the same send protocol
// as journey mail.
//
// This activity adds what Temporal needs: the position (last customer
// done, the counts so far) is heartbeated every second and after every
// chunk whose sends are recorded, so an attempt that follows a crash
// resumes there; input that can never work fails for good (BadInput,
// TemplateError); anything else is retried by Temporal, and the ledger
// skips what was sent.
func (a *Activities) BroadcastSendPage(ctx context.Context, in BroadcastPageInput) (BroadcastPageResult, error) {
	b := in.Broadcast
	if err := b.Validate(); err != nil {
		return BroadcastPageResult{}, badInput("broadcast", err)
	}
	c, err := a.broadcastCampaign(b)
	if err != nil {
		return BroadcastPageResult{}, badInput("broadcast "+b.BroadcastID, err)
	}
	if _, ok := c.Templates[b.Template]; !ok {
		return BroadcastPageResult{}, badInput("broadcast "+b.BroadcastID,
			fmt.Errorf("template %q not found in campaign %s", b.Template, c.Key()))
	}
	tpl, err := c.Renderer(b.Template)
	if err != nil {
		return BroadcastPageResult{}, templateFailure(b.BroadcastID, err)
	}
	log := tlog.With(activity.GetLogger(ctx), "broadcast", b.BroadcastID)
	hbTimeout := activity.GetInfo(ctx).HeartbeatTimeout
	if hbTimeout <= 0 {
		hbTimeout = BroadcastHeartbeatTimeout
	}
	var capRule *crm.MarketingCap
	if fc := c.Sending.FrequencyCap; fc != nil && fc.Max >= 1 && fc.Window > 0 {
		capRule = &crm.MarketingCap{Max: fc.Max, Window: fc.Window.D()}
	}
	// The audience query flags who is over the cap or within the gap; the
	// claims check both again (with the sends in flight), so a journey
	// email sent between the query and the claim is respected too.
	policy := broadcastPolicy(c.Sending, capRule)
	batch := sendonce.Batch{
		Lease: hbTimeout + broadcastLeaseMargin, RatePerSecond: b.RatePerSecond, Log: log,
		Letter: func(rc crm.Recipient) (sendonce.Letter, error) {
			l, err := a.broadcastLetter(b, c, tpl, rc)
			l.Claim.Policy = policy
			return l, err
		},
	}
	if qh := c.Sending.QuietHours; b.RespectQuietHours && qh != nil {
		batch.QuietHours, batch.DefaultZone = qh, time.UTC
		if loc, err := campaign.LoadLocation(c.DefaultTimeZone); err == nil {
			batch.DefaultZone = loc
		}
	}

	pos := resumePage(ctx, in, log)
	stopBeats := pos.heartbeatLoop()
	defer stopBeats()
	limit := b.PageSizeOrDefault() - pos.recipients()
	if limit <= 0 {
		return pos.result(false, c.Version), nil
	}
	rows, err := a.CRM.SegmentPage(ctx, crm.SegmentQuery{
		Segment: b.Segment.crm(), After: pos.cursor(), Limit: limit,
		SendKeySuffix: b.keySuffix(), Cap: capRule, MinGap: max(c.Sending.MinGap.D(), 0),
	})
	if err != nil {
		if errors.Is(err, crm.ErrInvalid) {
			return BroadcastPageResult{}, badInput("broadcast "+b.BroadcastID, err)
		}
		return BroadcastPageResult{}, fmt.Errorf("broadcast %s: %w", b.BroadcastID, err)
	}
	batch.Recipients, batch.Done = rows, pos.advance
	err = a.sender().SendBatch(ctx, batch)
	pos.beat()
	if err != nil {
		return BroadcastPageResult{}, broadcastFailure(b.BroadcastID, err)
	}
	return pos.result(len(rows) < limit, c.Version), nil
}

// broadcastPolicy is the campaign's contact policy for the ledger's check
// of a broadcast's claims; nil when it has neither a gap nor a cap.
func broadcastPolicy(s campaign.Sending, capRule *crm.MarketingCap) *crm.ContactPolicy {
	p := crm.ContactPolicy{MinGap: max(s.MinGap.D(), 0)}
	if capRule != nil {
		p.CapMax, p.CapWindow = capRule.Max, capRule.Window
	}
	if p.MinGap == 0 && p.CapMax == 0 {
		return nil
	}
	return &p
}

func (a *Activities) broadcastCampaign(b Broadcast) (*campaign.Campaign, error) {
	if b.CampaignVersion == "" {
		return a.Campaigns.Latest(b.CampaignID)
	}
	return a.Campaigns.Get(b.CampaignID, b.CampaignVersion)
}

// templateError is a template that does not render for a recipient.
type templateError struct{ err error }

func (e templateError) Error() string { return e.err.Error() }
func (e templateError) Unwrap() error { return e.err }

func templateFailure(broadcastID string, err error) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("broadcast %s: %v", broadcastID, err), ErrTemplate, err)
}

// broadcastFailure says whether Temporal may retry a page that failed.
func broadcastFailure(broadcastID string, err error) error {
	var terr templateError
	switch {
	case errors.As(err, &terr):
		return templateFailure(broadcastID, terr.err)
	case errors.Is(err, sendonce.ErrRefused):
		return badInput("broadcast "+broadcastID, err)
	}
	return fmt.Errorf("broadcast %s: %w", broadcastID, err)
}

// broadcastLetter renders a recipient's email. A broadcast is marketing
// mail whatever the template says: it carries the one-click unsubscribe
// headers.
func (a *Activities) broadcastLetter(b Broadcast, c *campaign.Campaign, tpl *campaign.Renderer, rc crm.Recipient) (sendonce.Letter, error) {
	key := b.SendKey(rc.CustomerID)
	unsubscribe := a.Signer.UnsubscribeURL(a.PublicBaseURL, rc.CustomerID)
	out, err := tpl.Render(campaign.TemplateData{
		FirstName: rc.FirstName, LastName: rc.LastName, Email: rc.Email, Company: rc.Company,
		Stage: rc.Stage, Score: rc.Score, UnsubscribeURL: unsubscribe,
		Extra: map[string]string{campaign.ExtraCustomerID: rc.CustomerID},
	})
	if err != nil {
		return sendonce.Letter{}, templateError{err}
	}
	messageID := email.MessageIDFor(key, a.From)
	return sendonce.Letter{
		Claim: crm.SendClaim{Key: key, CustomerID: rc.CustomerID, Email: rc.Email,
			Template: b.Template, Category: crm.CategoryMarketing, MessageID: messageID},
		Message: email.Message{
			MessageID: messageID, To: rc.Email,
			ToName:  strings.TrimSpace(rc.FirstName + " " + rc.LastName),
			Subject: out.Subject, Text: out.Text, HTML: out.HTML,
			Category: email.CategoryMarketing, UnsubscribeURL: unsubscribe,
			Headers: map[string]string{"X-Broadcast": b.BroadcastID, "X-Campaign": c.Key()},
		},
	}, nil
}

// pagePosition is a page attempt's position, heartbeated.
type pagePosition struct {
	ctx context.Context
	mu  sync.Mutex
	hb  broadcastHeartbeat
}

// resumePage starts at the page's cursor, or where the last heartbeat of
// an earlier attempt of this page left off.
func resumePage(ctx context.Context, in BroadcastPageInput, log tlog.Logger) *pagePosition {
	p := &pagePosition{ctx: ctx, hb: broadcastHeartbeat{Start: in.Cursor, Cursor: in.Cursor}}
	if !activity.HasHeartbeatDetails(ctx) {
		return p
	}
	var prev broadcastHeartbeat
	if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.Start == in.Cursor {
		p.hb = prev
		log.Info("resuming page from heartbeat", "page_start", in.Cursor, "cursor", prev.Cursor,
			"done", prev.Result.Recipients(), "attempt", activity.GetInfo(ctx).Attempt)
	}
	return p
}

func (p *pagePosition) cursor() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hb.Cursor
}

func (p *pagePosition) recipients() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hb.Result.Recipients()
}

// advance moves the position past a chunk whose sends are all recorded.
func (p *pagePosition) advance(cursor string, c sendonce.Counts) {
	p.mu.Lock()
	p.hb.Cursor = cursor
	r := &p.hb.Result
	r.Sent += c.Sent
	r.Duplicate += c.Duplicate
	r.Suppressed += c.Suppressed
	r.Failed += c.Failed
	r.Deferred += c.Deferred
	hb := p.hb
	p.mu.Unlock()
	activity.RecordHeartbeat(p.ctx, hb)
}

func (p *pagePosition) beat() {
	p.mu.Lock()
	hb := p.hb
	p.mu.Unlock()
	activity.RecordHeartbeat(p.ctx, hb)
}

// heartbeatLoop heartbeats the position every second while the page runs,
// also while it waits for the throttle, for SMTP or for a lease.
func (p *pagePosition) heartbeatLoop() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(broadcastHeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-p.ctx.Done():
				return
			case <-t.C:
				p.beat()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (p *pagePosition) result(done bool, campaignVersion string) BroadcastPageResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.hb.Result
	r.NextCursor, r.Done, r.CampaignVersion = p.hb.Cursor, done, campaignVersion
	return r
}
