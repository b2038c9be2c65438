package broadcast

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/time/rate"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
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
	// Concurrency is how many messages of a chunk are sent at once; set
	// it to the SMTP pool size (0 means email.DefaultConnections). Two
	// chunks overlap at their ends; the Sender's pool bounds the messages
	// actually in flight.
	Concurrency int
}

// Tuning of SendPage.
const (
	// maxChunk is how many recipients are claimed in one ledger statement
	// and then sent before the heartbeat position moves on.
	maxChunk = 200
	// markBatch and markEvery bound how long a sent message waits to be
	// marked sent in the ledger: the crash window of a same-Message-ID
	// resend.
	markBatch = 64
	markEvery = 20 * time.Millisecond
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
//     Message-ID derived from the send key and List-Unsubscribe headers;
//     they are marked sent in small batches right after the SMTP replies.
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
	r := &pageRun{a: a, in: bi, c: c, tpl: tpl, log: activity.GetLogger(ctx), ctx: ctx}
	r.conc = a.Concurrency
	if r.conc <= 0 {
		r.conc = email.DefaultConnections
	}
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
	// and claimed, so the SMTP connections never wait for the database.
	// Sent messages are marked in the ledger by one marker for the page;
	// the heartbeat position moves past a chunk only once its marks are
	// written (a fence through the marker), so a resumed attempt never
	// skips a recipient whose ledger row still says "claimed".
	r.marks = newMarker(ctx, r.a.CRM, r.advance)
	err = r.run(ctx, chunks)
	if merr := r.marks.close(); merr != nil && err == nil {
		err = fmt.Errorf("broadcast %s: record sends in the ledger: %w", bi.BroadcastID, merr)
	}
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
// Sender's pool bounds the messages in flight). A chunk is fenced into
// the heartbeat position in order, once it completed. A chunk that must
// wait for another attempt's claims is handled alone.
func (r *pageRun) run(ctx context.Context, chunks [][]crm.Recipient) (err error) {
	var (
		next <-chan prepared
		prev *sending
	)
	// settle waits for the chunk sending in the background and fences it.
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
		r.marks.fence(cursor, d.counts)
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
			r.marks.fence(cursor, counts)
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

	ctx   context.Context
	marks *marker
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

// validAddress is the CRM's rule for an address (a bare address that
// net/mail parses); a contact row written around the CRM's validation
// could hold something else.
func validAddress(v string) bool {
	a, err := mail.ParseAddress(v)
	return err == nil && a.Address == v && a.Name == ""
}

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
	for _, rc := range rows {
		switch rc.Skip {
		case crm.SkipAlreadySent:
			p.res.Duplicate++
			continue
		case crm.SkipFailed:
			p.res.Failed++
			continue
		case crm.SkipSuppressed:
			p.res.Suppressed++
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
		case crm.ClaimFailed:
			p.res.Failed++
		case crm.ClaimSuppressed:
			p.res.Suppressed++
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
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if err := r.a.CRM.MarkFailedBatch(wctx, keys, "not attempted: the page stopped early", false); err != nil {
		r.log.Warn("broadcast: releasing claims failed; the retry waits for their lease", "error", err)
	}
}

// send sends the claimed jobs, Concurrency at a time. Sent messages are
// marked sent in small batches as they go; permanent failures are marked
// failed and counted; after a transient failure (or cancellation) no new
// send starts, the ones in flight finish, the claims that were not tried
// are released, and an error is returned.
func (r *pageRun) send(ctx context.Context, jobs []job) (sent, failed int, err error) {
	if len(jobs) == 0 {
		return 0, 0, nil
	}
	type outcome struct {
		tried bool
		err   error
	}
	results := make([]outcome, len(jobs))
	var (
		next     atomic.Int64
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(e error) {
		stop.Store(true)
		r.halt.Store(true)
		errOnce.Do(func() { firstErr = e })
	}
	for range min(r.conc, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
				if r.marks.failing.Load() {
					// Sends that cannot be recorded would be sent again
					// by the retry: stop until the ledger works.
					fail(fmt.Errorf("broadcast %s: the send ledger cannot record sends; stopping", r.in.BroadcastID))
					return
				}
				results[i].tried = true
				err := r.a.Mail.Send(ctx, jobs[i].msg)
				if err == nil {
					// Into the ledger at once (batched by the marker):
					// the only window for a same-Message-ID resend.
					r.marks.add(crm.SentAt{Key: jobs[i].key, At: time.Now()})
					continue
				}
				results[i].err = err
				if !email.IsPermanent(err) {
					fail(fmt.Errorf("broadcast %s: send %s: %w", r.in.BroadcastID, jobs[i].key, err))
				}
			}
		}()
	}
	wg.Wait()
	var markErr error

	// Ledger writes about sends that happened run even when the activity
	// is being cancelled.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	var untried []string
	for i, o := range results {
		switch {
		case !o.tried:
			untried = append(untried, jobs[i].key)
		case o.err == nil:
			sent++
		case email.IsPermanent(o.err):
			failed++
			if err := r.a.CRM.MarkFailed(wctx, jobs[i].key, o.err.Error(), true); err != nil && markErr == nil {
				markErr = err
			}
		default:
			// Transient: the next claim answers ClaimRetry. The message
			// may have reached the server (the connection broke after
			// the data went out); a resend carries the same Message-ID.
			if err := r.a.CRM.MarkFailed(wctx, jobs[i].key, o.err.Error(), false); err != nil && markErr == nil {
				markErr = err
			}
		}
	}
	if len(untried) > 0 {
		// Released, so the retry claims them at once (ClaimRetry)
		// instead of waiting for their lease.
		if err := r.a.CRM.MarkFailedBatch(wctx, untried, "not attempted: the page stopped early", false); err != nil && markErr == nil {
			markErr = err
		}
	}
	if firstErr != nil {
		return sent, failed, firstErr
	}
	if len(untried) > 0 {
		// Another chunk of the page failed and halted this one.
		return sent, failed, fmt.Errorf("broadcast %s: %w", r.in.BroadcastID, errHalted)
	}
	if markErr != nil {
		return sent, failed, fmt.Errorf("broadcast %s: record sends in the ledger: %w", r.in.BroadcastID, markErr)
	}
	return sent, failed, nil
}

// marker records sent messages in the ledger in small batches: at most
// markBatch keys or markEvery after the SMTP reply. A fence flushes what
// came before it and, when that worked, calls onFence.
type marker struct {
	store   *crm.Store
	ctx     context.Context
	ch      chan markItem
	done    chan struct{}
	onFence func(cursor string, counts PageResult)
	err     error
	// failing is set when a write failed: senders stop.
	failing atomic.Bool
}

type markItem struct {
	sent   crm.SentAt
	fence  bool
	cursor string
	counts PageResult
}

func newMarker(ctx context.Context, store *crm.Store, onFence func(string, PageResult)) *marker {
	m := &marker{store: store, ctx: context.WithoutCancel(ctx), ch: make(chan markItem, markBatch),
		done: make(chan struct{}), onFence: onFence}
	go m.run()
	return m
}

func (m *marker) add(s crm.SentAt) { m.ch <- markItem{sent: s} }

// fence asks for onFence(cursor, counts) once every send added before is
// recorded.
func (m *marker) fence(cursor string, counts PageResult) {
	m.ch <- markItem{fence: true, cursor: cursor, counts: counts}
}

func (m *marker) run() {
	defer close(m.done)
	t := time.NewTicker(markEvery)
	defer t.Stop()
	batch := make([]crm.SentAt, 0, markBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(m.ctx, markTimeout)
		defer cancel()
		if err := m.store.MarkSentBatch(ctx, batch); err != nil {
			m.failing.Store(true)
			if m.err == nil {
				m.err = err
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case it, ok := <-m.ch:
			if !ok {
				flush()
				return
			}
			if it.fence {
				flush()
				if m.err == nil && m.onFence != nil {
					m.onFence(it.cursor, it.counts)
				}
				continue
			}
			batch = append(batch, it.sent)
			if len(batch) >= markBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// close flushes what is left, runs the pending fences and reports the
// first ledger error.
func (m *marker) close() error {
	close(m.ch)
	<-m.done
	return m.err
}
