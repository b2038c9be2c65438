package broadcast

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/time/rate"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/email"
)

// Mailer sends one message; *email.Sender is the production one (a pool
// of reused SMTP connections).
type Mailer interface {
	Send(ctx context.Context, m email.Message) error
}

// Activities holds what SendPage needs; one per worker. Register it with
// activity.RegisterOptions{Name: ActivityPrefix}.
type Activities struct {
	CRM       *crm.Store
	Mail      Mailer
	Campaigns *campaign.Registry
	Signer    email.Signer
	// PublicBaseURL is where unsubscribe links point.
	PublicBaseURL string
	// From is the sender address, used to derive Message-IDs.
	From string
	// Concurrency is how many broadcast messages this worker sends at
	// once; set it to the SMTP pool size (0 means
	// email.DefaultConnections). It is also the bound on messages a crash
	// can leave in doubt (accepted by SMTP, not yet recorded as sent).
	Concurrency int
	// Metrics counts every recipient's outcome in lifecycle_emails_total;
	// nil counts nothing.
	Metrics *activities.Metrics

	initOnce sync.Once
	// slots has Concurrency places; a message holds one from just before
	// the SMTP server can accept it until the ledger records the outcome,
	// so at most Concurrency messages are ever in doubt, across all pages.
	slots chan struct{}
	marks *markGroup
}

// Outcomes counted in lifecycle_emails_total (activities.Metrics.Email).
const (
	outcomeSent       = "sent"
	outcomeDuplicate  = "duplicate"
	outcomeSuppressed = "suppressed"
	outcomeFailed     = "failed"
	// outcomeBounced is a hard bounce: the address is now suppressed.
	outcomeBounced = "bounced"
	// outcomeRetry is a transient failure: the page's retry sends again.
	outcomeRetry = "retry"
)

func (a *Activities) init() {
	a.initOnce.Do(func() {
		a.slots = make(chan struct{}, a.concurrency())
		a.marks = newMarkGroup(a.CRM)
	})
}

func (a *Activities) concurrency() int {
	if a.Concurrency > 0 {
		return a.Concurrency
	}
	return email.DefaultConnections
}

// Tuning of SendPage.
const (
	// maxChunk is how many recipients are claimed in one ledger statement
	// and then sent before the heartbeat position moves on.
	maxChunk = 200
	// leaseMargin is added to the heartbeat timeout for a claim's lease:
	// after a crash the retry starts about a heartbeat timeout later and
	// waits at most this long for the dead attempt's claims to lapse.
	leaseMargin = 10 * time.Second
	// maxWaitRounds bounds how often a page waits for claims held by
	// another attempt before it gives up (and Temporal retries it).
	maxWaitRounds = 4
	// heartbeatEvery is how often the position is recorded (the SDK sends
	// it to the server at most every 0.8 × heartbeat timeout).
	heartbeatEvery = time.Second
	// markTimeout bounds ledger writes after a send, which run even when
	// the activity is being cancelled: the message went out.
	markTimeout = 15 * time.Second
)

// heartbeat is the activity's position within its page: every recipient
// up to Cursor (inclusive) is done and counted in Result.
type heartbeat struct {
	// Start is the page's starting cursor (PageInput.Cursor).
	Start  string     `json:"start"`
	Cursor string     `json:"cursor"`
	Result PageResult `json:"result"`
}

// SendKey returns the send key of a broadcast's email to a customer.
func SendKey(customerID, broadcastID string) string {
	return customerID + keySuffix(broadcastID)
}

func keySuffix(broadcastID string) string { return "/broadcast/" + broadcastID }

func badInput(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadInput, err)
}

// SendPage sends one page of the broadcast: the contacts of the segment
// after in.Cursor, at most Input.PageSize of them.
//
//  1. One SQL statement returns the page (keyset pagination) with the
//     per-recipient rules applied: erased, consent, suppression list,
//     frequency cap, segment filters, and what the ledger already holds
//     for this broadcast. Quiet hours, when respected, are checked per
//     recipient in Go with the same DST-correct code as journey mail.
//  2. The page is handled in chunks: the chunk's send keys
//     ("<customer>/broadcast/<id>") are claimed in one ledger statement;
//     keys already sent are skipped, keys held by another (dead) attempt
//     are waited for until their lease runs out.
//  3. The claimed messages are sent over the pooled SMTP connections,
//     Concurrency at a time, throttled to RatePerSecond, with the
//     Message-ID derived from the send key and List-Unsubscribe headers.
//     A sender starts its next message only once the ledger recorded the
//     previous one as sent (group commit: the marks waiting at the same
//     time go in one statement), so a crash leaves at most Concurrency
//     messages in doubt.
//  4. Once a chunk's sends are recorded, the position (last customer
//     done) and the counts are heartbeated, so a retry after a crash
//     resumes there.
//
// Chunks are pipelined: the next one is rendered and claimed while one
// sends, and two overlap at their ends.
//
// Permanent SMTP failures are recorded per recipient and counted as
// Failed; a transient failure ends the attempt with a retryable error
// after the sends in flight finished (Temporal retries the page; what was
// sent is skipped).
func (a *Activities) SendPage(ctx context.Context, in PageInput) (PageResult, error) {
	bi := in.Input
	if err := bi.Validate(); err != nil {
		return PageResult{}, badInput(err)
	}
	c, err := a.campaign(bi)
	if err != nil {
		return PageResult{}, badInput(err)
	}
	if _, ok := c.Templates[bi.Template]; !ok {
		return PageResult{}, badInput(fmt.Errorf("template %q not found in campaign %s", bi.Template, c.Key()))
	}
	tpl, err := c.Renderer(bi.Template)
	if err != nil {
		return PageResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("broadcast %s: %v", bi.BroadcastID, err), ErrTemplate, err)
	}
	a.init()
	r := &pageRun{a: a, in: bi, c: c, tpl: tpl, log: activity.GetLogger(ctx), ctx: ctx}
	r.conc = a.concurrency()
	r.chunk = maxChunk
	hbTimeout := activity.GetInfo(ctx).HeartbeatTimeout
	if hbTimeout <= 0 {
		hbTimeout = HeartbeatTimeout
	}
	r.lease = hbTimeout + leaseMargin
	if bi.RatePerSecond > 0 {
		// A chunk takes at most ~5 s at the configured rate, and its
		// claims are leased for that long on top.
		r.chunk = min(maxChunk, max(r.conc, 5*bi.RatePerSecond))
		r.lease += time.Duration(r.chunk/bi.RatePerSecond+1) * time.Second
		r.limiter = rate.NewLimiter(rate.Limit(bi.RatePerSecond), max(1, min(bi.RatePerSecond, r.conc)))
	}
	if qh := c.Sending.QuietHours; bi.RespectQuietHours && qh != nil {
		r.quiet = qh
		r.defaultLoc = time.UTC
		if loc, err := campaign.LoadLocation(c.DefaultTimeZone); err == nil {
			r.defaultLoc = loc
		}
	}
	var capRule *crm.MarketingCap
	if fc := c.Sending.FrequencyCap; fc != nil && fc.Max >= 1 && fc.Window > 0 {
		capRule = &crm.MarketingCap{Max: fc.Max, Window: fc.Window.D()}
	}

	// Resume from the last heartbeat of an earlier attempt of this page.
	r.pos = heartbeat{Start: in.Cursor, Cursor: in.Cursor}
	if activity.HasHeartbeatDetails(ctx) {
		var prev heartbeat
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.Start == in.Cursor {
			r.pos = prev
			r.log.Info("resuming page from heartbeat", "broadcast", bi.BroadcastID, "page_start", in.Cursor,
				"cursor", prev.Cursor, "done", prev.Result.Recipients(), "attempt", activity.GetInfo(ctx).Attempt)
		}
	}
	stopBeats := r.heartbeatLoop(ctx)
	defer stopBeats()

	limit := bi.pageSize() - r.pos.Result.Recipients()
	if limit <= 0 {
		return r.result(false), nil
	}
	rows, err := a.CRM.SegmentPage(ctx, crm.SegmentQuery{
		Segment: bi.Segment.crm(), After: r.pos.Cursor, Limit: limit,
		SendKeySuffix: keySuffix(bi.BroadcastID), Cap: capRule,
	})
	if err != nil {
		if errors.Is(err, crm.ErrInvalid) {
			return PageResult{}, badInput(err)
		}
		return PageResult{}, fmt.Errorf("broadcast %s: %w", bi.BroadcastID, err)
	}
	// Chunks ramp up from a few messages per connection to r.chunk, so
	// that sending starts soon after the page's query.
	var chunks [][]crm.Recipient
	for start, size := 0, min(r.chunk, 4*r.conc); start < len(rows); start, size = start+size, min(r.chunk, 2*size) {
		chunks = append(chunks, rows[start:min(start+size, len(rows))])
	}
	// Pipelined: while one chunk is being sent, the next one is rendered
	// and claimed, so the SMTP connections never wait for the page's
	// claims. Every send is recorded before its sender goes on, so the
	// heartbeat position can move past a chunk as soon as the chunk
	// returns: a resumed attempt never skips a recipient whose ledger row
	// still says "claimed".
	err = r.run(ctx, chunks)
	r.beat(ctx)
	if err != nil {
		return PageResult{}, err
	}
	return r.result(len(rows) < limit), nil
}

// errHalted: a chunk stopped because another chunk of the page failed.
var errHalted = errors.New("stopped: another part of the page failed")

// sending is a chunk whose sends run in the background.
type sending struct {
	cursor string
	done   chan chunkDone
}

type chunkDone struct {
	counts PageResult
	err    error
}

// run handles the chunks in order, two at a time: chunk k+1 is claimed
// while chunk k sends, and starts sending while chunk k's last messages
// are in flight, so the SMTP connections stay busy across chunk ends (the
// worker's send slots bound the messages in flight). The heartbeat
// position moves past the chunks in order, each once it completed (its
// sends are then recorded). A chunk that must wait for another attempt's
// claims is handled alone.
func (r *pageRun) run(ctx context.Context, chunks [][]crm.Recipient) (err error) {
	var (
		next <-chan prepared
		prev *sending
	)
	// settle waits for the chunk sending in the background and moves the
	// position past it.
	settle := func() error {
		if prev == nil {
			return nil
		}
		d := <-prev.done
		cursor := prev.cursor
		prev = nil
		if d.err != nil {
			return d.err
		}
		r.advance(cursor, d.counts)
		return nil
	}
	defer func() {
		if err == nil {
			return
		}
		// Stop what still sends and wait for it, without fencing: the
		// position must not move past a chunk that failed. Release the
		// claims of a chunk prepared ahead, so the retry does not wait
		// for their lease.
		r.halt.Store(true)
		if prev != nil {
			<-prev.done
		}
		if next != nil {
			r.release(ctx, (<-next).send)
		}
	}()
	for k, chunk := range chunks {
		if next == nil {
			next = r.prepareAsync(ctx, chunks, k)
		}
		p := <-next
		next = nil
		if p.err != nil {
			return p.err
		}
		cursor := chunk[len(chunk)-1].CustomerID
		if len(p.wait) > 0 {
			// Another attempt holds some of these claims: finish the
			// chunk before, then this one alone (the next chunk's claims
			// are not taken ahead: they could lapse while this one waits).
			if err := settle(); err != nil {
				return err
			}
			counts, err := r.finishChunk(ctx, p)
			if err != nil {
				return err
			}
			r.advance(cursor, counts)
			continue
		}
		if k+1 < len(chunks) {
			next = r.prepareAsync(ctx, chunks, k+1)
		}
		cur := &sending{cursor: cursor, done: make(chan chunkDone, 1)}
		go func() {
			counts, err := r.finishChunk(ctx, p)
			cur.done <- chunkDone{counts, err}
		}()
		// The chunk before ends while this one starts sending.
		if err := settle(); err != nil {
			prev = cur
			return err
		}
		prev = cur
	}
	return settle()
}

// advance moves the heartbeat position past a chunk whose sends are all
// recorded.
func (r *pageRun) advance(cursor string, counts PageResult) {
	r.mu.Lock()
	r.pos.Cursor = cursor
	r.pos.Result.add(counts)
	hb := r.pos
	r.mu.Unlock()
	activity.RecordHeartbeat(r.ctx, hb)
}

func (a *Activities) campaign(in Input) (*campaign.Campaign, error) {
	if in.CampaignVersion == "" {
		return a.Campaigns.Latest(in.CampaignID)
	}
	return a.Campaigns.Get(in.CampaignID, in.CampaignVersion)
}

// pageRun is one attempt of one page.
type pageRun struct {
	a          *Activities
	in         Input
	c          *campaign.Campaign
	tpl        *campaign.Renderer
	log        tlog.Logger
	conc       int
	chunk      int
	lease      time.Duration
	limiter    *rate.Limiter
	quiet      *campaign.QuietHours
	defaultLoc *time.Location

	ctx context.Context
	// halt stops every chunk of the page from starting new sends.
	halt atomic.Bool

	mu  sync.Mutex
	pos heartbeat
}

func (r *pageRun) result(done bool) PageResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.pos.Result
	res.NextCursor = r.pos.Cursor
	res.Done = done
	res.CampaignVersion = r.c.Version
	return res
}

func (r *pageRun) beat(ctx context.Context) {
	r.mu.Lock()
	hb := r.pos
	r.mu.Unlock()
	activity.RecordHeartbeat(ctx, hb)
}

// heartbeatLoop heartbeats the position every second while the page runs,
// also while it waits for the throttle, for SMTP or for a lease.
func (r *pageRun) heartbeatLoop(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.beat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// job is one message to send.
type job struct {
	rcpt      crm.Recipient
	key       string
	messageID string
	msg       email.Message
}

// isQuiet reports whether the recipient is inside quiet hours now.
func (r *pageRun) isQuiet(rc crm.Recipient, now time.Time) bool {
	if r.quiet == nil {
		return false
	}
	loc := r.defaultLoc
	if rc.TimeZone != "" {
		if l, err := campaign.LoadLocation(rc.TimeZone); err == nil {
			loc = l
		}
	}
	return r.quiet.NextAllowed(now, loc).After(now)
}

// validAddress is the CRM's rule for an address (customer.CheckEmail); a
// contact row written around the CRM's validation could hold something
// else.
func validAddress(v string) bool { return customer.CheckEmail("email", v) == nil }

// prepare renders the message for a recipient.
func (r *pageRun) prepare(rc crm.Recipient) (job, error) {
	key := SendKey(rc.CustomerID, r.in.BroadcastID)
	unsubscribe := r.a.Signer.UnsubscribeURL(r.a.PublicBaseURL, rc.CustomerID)
	out, err := r.tpl.Render(campaign.TemplateData{
		FirstName: rc.FirstName, LastName: rc.LastName, Email: rc.Email, Company: rc.Company,
		Stage: rc.Stage, Score: rc.Score, UnsubscribeURL: unsubscribe,
		Extra: map[string]string{campaign.ExtraCustomerID: rc.CustomerID},
	})
	if err != nil {
		return job{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("broadcast %s: %v", r.in.BroadcastID, err), ErrTemplate, err)
	}
	messageID := email.MessageIDFor(key, r.a.From)
	return job{rcpt: rc, key: key, messageID: messageID, msg: email.Message{
		MessageID: messageID, To: rc.Email,
		ToName:  strings.TrimSpace(rc.FirstName + " " + rc.LastName),
		Subject: out.Subject, Text: out.Text, HTML: out.HTML,
		// A broadcast is marketing mail whatever the template says: it
		// carries the one-click unsubscribe headers.
		Category: email.CategoryMarketing, UnsubscribeURL: unsubscribe,
		Headers: map[string]string{"X-Broadcast": r.in.BroadcastID, "X-Campaign": r.c.Key()},
	}}, nil
}

// prepared is a chunk rendered and claimed, ready to send.
type prepared struct {
	// res counts the recipients the rules or the claim settled.
	res PageResult
	// send holds the claims won (ClaimNew, ClaimRetry); wait the sends
	// another attempt holds, until waitUntil.
	send, wait []job
	waitUntil  time.Time
	err        error
}

func (r *pageRun) prepareAsync(ctx context.Context, chunks [][]crm.Recipient, k int) <-chan prepared {
	ch := make(chan prepared, 1)
	go func() { ch <- r.prepareChunk(ctx, chunks[k]) }()
	return ch
}

// prepareChunk applies the rules that are left for Go (quiet hours, a
// sane address), renders the messages and claims their send keys in one
// ledger statement.
func (r *pageRun) prepareChunk(ctx context.Context, rows []crm.Recipient) prepared {
	var p prepared
	now := time.Now()
	var jobs []job
	m := r.a.Metrics
	for _, rc := range rows {
		// A failure recorded by an earlier attempt was counted in the
		// metrics when it happened (as journey mail does); deferrals are
		// not email outcomes.
		switch rc.Skip {
		case crm.SkipAlreadySent:
			p.res.Duplicate++
			m.Email(outcomeDuplicate)
			continue
		case crm.SkipFailed:
			p.res.Failed++
			continue
		case crm.SkipSuppressed:
			p.res.Suppressed++
			m.Email(outcomeSuppressed)
			continue
		case crm.SkipFrequencyCap:
			p.res.Deferred++
			continue
		}
		if r.isQuiet(rc, now) {
			p.res.Deferred++
			continue
		}
		if !validAddress(rc.Email) {
			r.log.Warn("broadcast: contact has an invalid address; not sent", "customer_id", rc.CustomerID)
			p.res.Failed++
			m.Email(outcomeFailed)
			continue
		}
		j, err := r.prepare(rc)
		if err != nil {
			p.err = err
			return p
		}
		jobs = append(jobs, j)
	}
	p.err = r.claim(ctx, jobs, &p)
	return p
}

// claim claims the jobs' send keys and sorts them into p.
func (r *pageRun) claim(ctx context.Context, jobs []job, p *prepared) error {
	if len(jobs) == 0 {
		return nil
	}
	claims := make([]crm.SendClaim, len(jobs))
	for i, j := range jobs {
		claims[i] = crm.SendClaim{Key: j.key, CustomerID: j.rcpt.CustomerID, Email: j.rcpt.Email,
			Template: r.in.Template, Category: crm.CategoryMarketing, MessageID: j.messageID, Lease: r.lease}
	}
	outcomes, err := r.a.CRM.ClaimSendBatch(ctx, claims)
	if err != nil {
		if errors.Is(err, crm.ErrInvalid) {
			return badInput(err)
		}
		return fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, err)
	}
	for i, o := range outcomes {
		switch o.Result {
		case crm.ClaimNew, crm.ClaimRetry:
			p.send = append(p.send, jobs[i])
		case crm.ClaimAlreadySent:
			p.res.Duplicate++
			r.a.Metrics.Email(outcomeDuplicate)
		case crm.ClaimFailed:
			p.res.Failed++ // counted in the metrics when it failed
		case crm.ClaimSuppressed:
			p.res.Suppressed++
			r.a.Metrics.Email(outcomeSuppressed)
		case crm.ClaimInProgress:
			p.wait = append(p.wait, jobs[i])
			if o.LeaseUntil.After(p.waitUntil) {
				p.waitUntil = o.LeaseUntil
			}
		}
	}
	return nil
}

// finishChunk sends a prepared chunk and settles the sends another attempt
// held: every recipient of the chunk is counted once when it returns nil.
func (r *pageRun) finishChunk(ctx context.Context, p prepared) (PageResult, error) {
	res := p.res
	for round := 0; ; round++ {
		sent, failed, err := r.send(ctx, p.send)
		res.Sent += sent
		res.Failed += failed
		if err != nil {
			return PageResult{}, err
		}
		if len(p.wait) == 0 {
			return res, nil
		}
		if round+1 >= maxWaitRounds {
			return PageResult{}, fmt.Errorf("broadcast %s: %d sends are still claimed by another attempt; retry later",
				r.in.BroadcastID, len(p.wait))
		}
		// Another attempt (a dead worker's, after a crash) holds these
		// claims: wait until its lease runs out, then claim again. The
		// heartbeat loop keeps this attempt alive meanwhile.
		d := time.Until(p.waitUntil) + 250*time.Millisecond
		r.log.Info("waiting for claims of another attempt to lapse", "broadcast", r.in.BroadcastID,
			"sends", len(p.wait), "wait", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return PageResult{}, fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, ctx.Err())
		case <-time.After(max(d, 0)):
		}
		again := prepared{res: res}
		if err := r.claim(ctx, p.wait, &again); err != nil {
			return PageResult{}, err
		}
		p, res = again, again.res
	}
}

// release gives up claims that were won but will not be tried now: marked
// as a transient failure, the next claim takes them over at once.
func (r *pageRun) release(ctx context.Context, jobs []job) {
	if len(jobs) == 0 {
		return
	}
	keys := make([]string, len(jobs))
	for i, j := range jobs {
		keys[i] = j.key
	}
	wctx, cancel := ledgerContext(ctx)
	defer cancel()
	if err := r.a.CRM.MarkFailedBatch(wctx, keys, "not attempted: the page stopped early", false); err != nil {
		r.log.Warn("broadcast: releasing claims failed; the retry waits for their lease", "error", err)
	}
}

// send sends the claimed jobs, Concurrency at a time. A message holds one
// of the worker's slots from just before the server can accept it — the
// mailer asks for the slot after the envelope's round trips, before the end
// of the data (email.Message.BeforeEnd) — until the ledger has recorded it
// as sent (group commit with the other senders). So at most Concurrency
// messages are ever accepted and unrecorded, which is all a crash can leave
// in doubt, while a sender goes on with its next message as soon as the
// server accepted the last one. Permanent failures are marked failed and
// counted; after a transient failure (or cancellation) no new send starts,
// the ones in flight finish, the claims that were not tried are released,
// and an error is returned. It returns once every send it made is recorded.
func (r *pageRun) send(ctx context.Context, jobs []job) (sent, failed int, err error) {
	if len(jobs) == 0 {
		return 0, 0, nil
	}
	tried := make([]bool, len(jobs))
	var (
		next     atomic.Int64
		nSent    atomic.Int64
		nFailed  atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		marks    sync.WaitGroup
	)
	fail := func(e error) {
		stop.Store(true)
		r.halt.Store(true)
		errOnce.Do(func() { firstErr = e })
	}
	for range min(r.conc, len(jobs)) {
		wg.Go(func() {
			for !stop.Load() && !r.halt.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				if r.limiter != nil {
					if err := r.limiter.Wait(ctx); err != nil {
						fail(fmt.Errorf("broadcast %s: throttle: %w", r.in.BroadcastID, err))
						return
					}
				}
				if err := ctx.Err(); err != nil {
					fail(fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, err))
					return
				}
				tried[i] = true
				switch err := r.sendOne(ctx, jobs[i], &marks, fail); {
				case err == nil:
					nSent.Add(1)
				case errors.Is(err, errPermanent):
					nFailed.Add(1)
				default:
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	marks.Wait()

	var untried []string
	for i, t := range tried {
		if !t {
			untried = append(untried, jobs[i].key)
		}
	}
	var markErr error
	if len(untried) > 0 {
		// Released, so the retry claims them at once (ClaimRetry)
		// instead of waiting for their lease.
		wctx, cancel := ledgerContext(ctx)
		markErr = r.a.CRM.MarkFailedBatch(wctx, untried, "not attempted: the page stopped early", false)
		cancel()
	}
	sent, failed = int(nSent.Load()), int(nFailed.Load())
	if firstErr != nil {
		return sent, failed, firstErr
	}
	if len(untried) > 0 {
		// Another chunk of the page failed and halted this one.
		return sent, failed, fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, errHalted)
	}
	if markErr != nil {
		return sent, failed, fmt.Errorf("broadcast %s: release unsent claims in the ledger: %w", r.in.BroadcastID, markErr)
	}
	return sent, failed, nil
}

// errPermanent marks a send the SMTP server refused for good (recorded).
var errPermanent = errors.New("refused permanently")

// ledgerContext is for ledger writes about sends that happened: they run
// even when the activity is being cancelled (the message went out).
func ledgerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
}

// sendOne sends one message. A message the server accepted is recorded
// as sent in the background (marks counts it; fail stops the page when the
// ledger cannot record it) and sendOne returns nil; a permanent refusal is
// recorded before it returns an error wrapping errPermanent (the page goes
// on); any other error means the page must stop.
func (r *pageRun) sendOne(ctx context.Context, j job, marks *sync.WaitGroup, fail func(error)) error {
	m := r.a.Metrics
	held := false
	acquire := func() error {
		if held {
			return nil
		}
		select {
		case r.a.slots <- struct{}{}:
			held = true
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	msg := j.msg
	msg.BeforeEnd = acquire
	err := r.a.Mail.Send(ctx, msg)
	if err == nil {
		// Counted as it went out: a message the ledger then fails to
		// record is sent again by the retry, and counted again.
		m.Email(outcomeSent)
		if !held {
			// A mailer that does not call BeforeEnd: take the slot now,
			// so the ledger's writes still bound the sends in flight.
			if err := acquire(); err != nil {
				err = fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, err)
				fail(err)
				return err
			}
		}
		marks.Go(func() {
			wctx, cancel := ledgerContext(ctx)
			defer cancel()
			err := r.a.marks.mark(wctx, crm.SentAt{Key: j.key, At: time.Now()})
			<-r.a.slots
			if err != nil {
				// A send that cannot be recorded would be sent again by
				// the retry: stop until the ledger works.
				fail(fmt.Errorf("broadcast %s: record send %s in the ledger: %w", r.in.BroadcastID, j.key, err))
			}
		})
		return nil
	}
	if held {
		// Not accepted (or its outcome is unknown and recorded below as a
		// transient failure): the slot is free again.
		defer func() { <-r.a.slots }()
	}
	wctx, cancel := ledgerContext(ctx)
	defer cancel()
	if email.IsPermanent(err) {
		if merr := r.a.CRM.MarkFailed(wctx, j.key, err.Error(), true); merr != nil {
			return fmt.Errorf("broadcast %s: record permanent failure of %s in the ledger: %w", r.in.BroadcastID, j.key, merr)
		}
		if email.IsHardBounce(err) {
			// The server refused the address itself: no journey or
			// broadcast tries it again.
			if serr := r.a.CRM.Suppress(wctx, j.rcpt.Email, j.rcpt.CustomerID, crm.ReasonBounced); serr != nil {
				return fmt.Errorf("broadcast %s: suppress the bounced address of %s: %w", r.in.BroadcastID, j.key, serr)
			}
			m.Email(outcomeBounced)
		} else {
			m.Email(outcomeFailed)
		}
		return fmt.Errorf("broadcast %s: send %s: %w: %w", r.in.BroadcastID, j.key, errPermanent, err)
	}
	// Transient: recorded so that the retry claims it at once
	// (ClaimRetry). The message may have reached the server (the
	// connection broke after the data went out); a resend carries the
	// same Message-ID.
	m.Email(outcomeRetry)
	if merr := r.a.CRM.MarkFailed(wctx, j.key, err.Error(), false); merr != nil {
		r.log.Warn("broadcast: recording a transient failure failed; the retry waits for the claim's lease",
			"send_key", j.key, "error", merr)
	}
	return fmt.Errorf("broadcast %s: send %s: %w", r.in.BroadcastID, j.key, err)
}

// markGroup records sent messages in the ledger with group commit: a
// sender waits until its mark is written, and the marks that arrive while
// a write is in flight go together in the next statement. One per worker,
// so concurrent pages share the statements too.
type markGroup struct {
	store *crm.Store

	mu sync.Mutex
	// idle is signalled when a write ends; only the leader of the open
	// batch ever waits on it.
	idle    *sync.Cond
	writing bool
	// open collects marks until its leader can write it.
	open *markBatch
}

type markBatch struct {
	sends []crm.SentAt
	done  chan struct{}
	err   error
}

func newMarkGroup(store *crm.Store) *markGroup {
	g := &markGroup{store: store}
	g.idle = sync.NewCond(&g.mu)
	return g
}

// mark records s as sent and returns when the ledger holds it (or the
// write failed). The caller's ctx bounds the write if it leads the batch.
func (g *markGroup) mark(ctx context.Context, s crm.SentAt) error {
	g.mu.Lock()
	if b := g.open; b != nil {
		b.sends = append(b.sends, s)
		g.mu.Unlock()
		<-b.done
		return b.err
	}
	// Lead a new batch: wait for the write in flight, collecting whoever
	// comes meanwhile, then write them all.
	b := &markBatch{sends: []crm.SentAt{s}, done: make(chan struct{})}
	g.open = b
	for g.writing {
		g.idle.Wait()
	}
	g.open, g.writing = nil, true
	g.mu.Unlock()

	b.err = g.store.MarkSentBatch(ctx, b.sends)
	close(b.done)

	g.mu.Lock()
	g.writing = false
	g.idle.Signal()
	g.mu.Unlock()
	return b.err
}
