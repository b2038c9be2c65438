package sendonce

// A chunk: the recipients the rules settle, the claims of the rest in one
// ledger statement, the claimed letters sent Concurrency at a time.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// isQuiet reports whether the recipient is inside quiet hours now.
func (r *batchRun) isQuiet(rc crm.Recipient, now time.Time) bool {
	if r.b.QuietHours == nil {
		return false
	}
	loc := r.b.DefaultZone
	if rc.TimeZone != "" {
		if l, err := campaign.LoadLocation(rc.TimeZone); err == nil {
			loc = l
		}
	}
	return r.b.QuietHours.NextAllowed(now, loc).After(now)
}

// validAddress is the CRM's rule for an address (customer.CheckEmail); a
// contact row written around the CRM's validation could hold something
// else.
func validAddress(v string) bool { return customer.CheckEmail("email", v) == nil }

// prepared is a chunk made and claimed, ready to send.
type prepared struct {
	// res counts the recipients the rules or the claim settled.
	res Counts
	// send holds the claims won (ClaimNew, ClaimRetry); wait the sends
	// another attempt holds, until waitUntil.
	send, wait []Letter
	waitUntil  time.Time
	err        error
}

func (r *batchRun) prepareAsync(ctx context.Context, rows []crm.Recipient) <-chan prepared {
	ch := make(chan prepared, 1)
	go func() { ch <- r.prepareChunk(ctx, rows) }()
	return ch
}

// prepareChunk counts the recipients already settled (the audience
// query's flags, quiet hours, an address that does not parse), makes the
// others' letters and claims their send keys in one ledger statement.
func (r *batchRun) prepareChunk(ctx context.Context, rows []crm.Recipient) prepared {
	var p prepared
	now := time.Now()
	var letters []Letter
	for _, rc := range rows {
		// A failure recorded by an earlier attempt was counted when it
		// happened (as a journey's is); the audience query's deferrals are
		// not email outcomes (nothing reached the ledger; a claim the
		// ledger defers is counted, as a journey's is).
		switch rc.Skip {
		case crm.SkipAlreadySent:
			p.res.Duplicate++
			r.s.count(Duplicate)
			continue
		case crm.SkipFailed:
			p.res.Failed++
			continue
		case crm.SkipSuppressed:
			p.res.Suppressed++
			r.s.count(Suppressed)
			continue
		case crm.SkipFrequencyCap, crm.SkipMinGap:
			p.res.Deferred++
			continue
		}
		if r.isQuiet(rc, now) {
			p.res.Deferred++
			continue
		}
		if !validAddress(rc.Email) {
			r.log.Warn("contact has an invalid address; not sent", "customer_id", rc.CustomerID)
			p.res.Failed++
			r.s.count(Failed)
			continue
		}
		l, err := r.b.Letter(rc)
		if err != nil {
			p.err = err
			return p
		}
		l.Claim.Lease = r.lease
		letters = append(letters, l)
	}
	p.err = r.claim(ctx, letters, &p)
	return p
}

// claim claims the letters' send keys and sorts them into p.
func (r *batchRun) claim(ctx context.Context, letters []Letter, p *prepared) error {
	if len(letters) == 0 {
		return nil
	}
	claims := make([]crm.SendClaim, len(letters))
	for i, l := range letters {
		claims[i] = l.Claim
	}
	outcomes, err := r.s.ledger.ClaimSendBatch(ctx, claims)
	if err != nil {
		return claimError(err)
	}
	for i, o := range outcomes {
		switch o.Result {
		case crm.ClaimNew, crm.ClaimRetry:
			p.send = append(p.send, letters[i])
		case crm.ClaimAlreadySent:
			p.res.Duplicate++
			r.s.count(Duplicate)
		case crm.ClaimFailed:
			p.res.Failed++ // counted when it failed
		case crm.ClaimSuppressed:
			p.res.Suppressed++
			r.s.count(Suppressed)
		case crm.ClaimDeferred:
			// The contact policy, checked again at the claim: a journey
			// email went out since the audience query.
			p.res.Deferred++
			r.s.count(Deferred)
		case crm.ClaimInProgress:
			p.wait = append(p.wait, letters[i])
			if o.LeaseUntil.After(p.waitUntil) {
				p.waitUntil = o.LeaseUntil
			}
		}
	}
	return nil
}

// finishChunk sends a prepared chunk and settles the sends another attempt
// held: every recipient of the chunk is counted once when it returns nil.
func (r *batchRun) finishChunk(ctx context.Context, p prepared) (Counts, error) {
	res := p.res
	for round := 0; ; round++ {
		sent, failed, err := r.send(ctx, p.send)
		res.Sent += sent
		res.Failed += failed
		if err != nil {
			return Counts{}, err
		}
		if len(p.wait) == 0 {
			return res, nil
		}
		if round+1 >= maxWaitRounds {
			return Counts{}, fmt.Errorf("%d sends are still claimed by another attempt; retry later", len(p.wait))
		}
		// Another attempt (a dead worker's, after a crash) holds these
		// claims: wait until its lease runs out, then claim again.
		d := time.Until(p.waitUntil) + 250*time.Millisecond
		r.log.Info("waiting for claims of another attempt to lapse", "sends", len(p.wait), "wait", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return Counts{}, fmt.Errorf("waiting for claims of another attempt: %w", ctx.Err())
		case <-time.After(max(d, 0)):
		}
		again := prepared{res: res}
		if err := r.claim(ctx, p.wait, &again); err != nil {
			return Counts{}, err
		}
		p, res = again, again.res
	}
}

// release gives up claims that were won but will not be tried now: marked
// as a transient failure, the next claim takes them over at once.
func (r *batchRun) release(ctx context.Context, letters []Letter) {
	if len(letters) == 0 {
		return
	}
	wctx, cancel := ledgerContext(ctx)
	defer cancel()
	if err := r.s.ledger.MarkFailedBatch(wctx, keysOf(letters), notAttempted, false); err != nil {
		r.log.Warn("releasing claims failed; the retry waits for their lease", "error", err)
	}
}

// notAttempted is the ledger's reason for a claim released untried.
const notAttempted = "not attempted: the batch stopped early"

func keysOf(letters []Letter) []string {
	keys := make([]string, len(letters))
	for i, l := range letters {
		keys[i] = l.Claim.Key
	}
	return keys
}

// ledgerContext is for ledger writes about sends that happened: they run
// even when the batch is being cancelled (the message went out).
func ledgerContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
}

// send sends a chunk's claimed letters, Concurrency at a time, each with
// sendOne (which holds a send slot until its mark is written). Permanent
// failures are recorded and counted; after a transient failure (or
// cancellation) no new send starts, the ones in flight finish, the claims
// that were not tried are released, and an error is returned. It returns
// once every send it made is recorded.
func (r *batchRun) send(ctx context.Context, letters []Letter) (sent, failed int, err error) {
	if len(letters) == 0 {
		return 0, 0, nil
	}
	tried := make([]bool, len(letters))
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
	for range min(r.conc, len(letters)) {
		wg.Go(func() {
			for !stop.Load() && !r.halt.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(letters) {
					return
				}
				if r.limiter != nil {
					if err := r.limiter.Wait(ctx); err != nil {
						fail(fmt.Errorf("throttle: %w", err))
						return
					}
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				tried[i] = true
				o, err := r.sendOne(ctx, letters[i], &marks, fail)
				switch {
				case err != nil:
					fail(err)
					return
				case o == Sent:
					nSent.Add(1)
				default: // refused for good, and recorded
					nFailed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	marks.Wait()

	var untried []string
	for i, t := range tried {
		if !t {
			untried = append(untried, letters[i].Claim.Key)
		}
	}
	var releaseErr error
	if len(untried) > 0 {
		// Released, so the retry claims them at once (ClaimRetry)
		// instead of waiting for their lease.
		wctx, cancel := ledgerContext(ctx)
		releaseErr = r.s.ledger.MarkFailedBatch(wctx, untried, notAttempted, false)
		cancel()
	}
	sent, failed = int(nSent.Load()), int(nFailed.Load())
	switch {
	case firstErr != nil:
		return sent, failed, firstErr
	case len(untried) > 0:
		// Another chunk of the batch failed and halted this one.
		return sent, failed, errHalted
	case releaseErr != nil:
		return sent, failed, fmt.Errorf("release unsent claims in the ledger: %w", releaseErr)
	}
	return sent, failed, nil
}
