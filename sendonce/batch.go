package sendonce

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
)

// Tuning of SendBatch.
const (
	// maxChunk is how many recipients are claimed in one ledger statement
	// and then sent before Batch.Done hears of them.
	maxChunk = 200
	// maxWaitRounds bounds how often a chunk waits for claims held by
	// another attempt before the batch gives up (and is tried again).
	maxWaitRounds = 4
	// markTimeout bounds ledger writes after a send, which run even when
	// the batch is being cancelled: the message went out.
	markTimeout = 15 * time.Second
)

// Counts says what became of a batch's recipients; each one is counted in
// exactly one field.
type Counts struct {
	// Sent: accepted by the SMTP server now. Duplicate: sent earlier.
	// Suppressed: on the suppression list. Failed: refused for good
	// (recorded), or an address that does not parse. Deferred: over the
	// frequency cap, within the minimum gap (at the audience query or the
	// claim) or inside quiet hours; not tried, not recorded.
	Sent, Duplicate, Suppressed, Failed, Deferred int
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Sent += o.Sent
	c.Duplicate += o.Duplicate
	c.Suppressed += o.Suppressed
	c.Failed += o.Failed
	c.Deferred += o.Deferred
}

// Recipients is the number of recipients counted.
func (c Counts) Recipients() int {
	return c.Sent + c.Duplicate + c.Suppressed + c.Failed + c.Deferred
}

// Batch is one email to each of many recipients (a broadcast's page).
type Batch struct {
	// Recipients in customer ID order, flagged as crm.Store.SegmentPage
	// flags them (Skip).
	Recipients []crm.Recipient
	// Letter makes a recipient's email: the claim (SendBatch sets its
	// Lease) and the message. An error stops the batch and is returned.
	Letter func(crm.Recipient) (Letter, error)
	// Lease is how long a claim is held before another attempt may take
	// it over; when throttled, the time a chunk takes is added.
	Lease time.Duration
	// RatePerSecond throttles the sends (a token bucket); 0 means
	// unlimited.
	RatePerSecond int
	// QuietHours, when set, defers the recipients who are inside them now
	// in their time zone (DefaultZone when they have none, or one the tz
	// database does not know; nil DefaultZone means UTC).
	QuietHours  *campaign.QuietHours
	DefaultZone *time.Location
	// Done is called after each chunk, in order, once every send of the
	// chunk is recorded, with the chunk's last customer ID and counts: an
	// attempt that resumes after that ID skips nobody whose ledger row
	// still says "claimed". Optional.
	Done func(lastCustomerID string, c Counts)
	// Log hears of invalid addresses, waits and unrecorded failures;
	// nil logs nothing.
	Log Logger
}

// SendBatch sends the batch's emails, each exactly once per key:
//
//  1. the recipients are handled in chunks that ramp up from a few
//     messages per connection to maxChunk, so sending starts soon;
//  2. per chunk, the recipients the ledger, the rules or quiet hours
//     settle are counted; the others' letters are made and their keys
//     claimed in one ledger statement (ClaimSendBatch); keys held by
//     another attempt are waited for until their lease runs out;
//  3. the claimed messages go out Concurrency at a time, throttled to
//     RatePerSecond. A message holds a send slot from just before the SMTP
//     server can accept it (email.Message.BeforeEnd) until the ledger
//     recorded it as sent (group commit: the marks waiting at the same
//     time go in one statement), so at most Concurrency messages are ever
//     in doubt, across all the batches of the Sender;
//  4. once a chunk's sends are recorded, Done hears of it.
//
// Chunks are pipelined: the next one is made and claimed while one sends,
// and two overlap at their ends.
//
// A permanent SMTP refusal is recorded and counted as Failed; the batch
// goes on. A transient failure stops it: the sends in flight finish, the
// claims not tried are released (the next claim takes them over at once)
// and an error is returned. So does a ledger that cannot record a send: a
// message that cannot be marked sent would be sent again by the retry.
func (s *Sender) SendBatch(ctx context.Context, b Batch) error {
	r := &batchRun{s: s, b: b, log: b.Log, conc: s.Concurrency(), chunk: maxChunk, lease: b.Lease}
	if r.log == nil {
		r.log = nopLogger{}
	}
	if b.RatePerSecond > 0 {
		// A chunk takes at most ~5 s at the configured rate, and its
		// claims are leased for that long on top.
		r.chunk = min(maxChunk, max(r.conc, 5*b.RatePerSecond))
		r.lease += time.Duration(r.chunk/b.RatePerSecond+1) * time.Second
		r.limiter = rate.NewLimiter(rate.Limit(b.RatePerSecond), max(1, min(b.RatePerSecond, r.conc)))
	}
	rows := b.Recipients
	var chunks [][]crm.Recipient
	for start, size := 0, min(r.chunk, 4*r.conc); start < len(rows); start, size = start+size, min(r.chunk, 2*size) {
		chunks = append(chunks, rows[start:min(start+size, len(rows))])
	}
	return r.run(ctx, chunks)
}

// batchRun is one SendBatch call.
type batchRun struct {
	s       *Sender
	b       Batch
	log     Logger
	conc    int
	chunk   int
	lease   time.Duration
	limiter *rate.Limiter
	// halt stops every chunk of the batch from starting new sends.
	halt atomic.Bool
}

type nopLogger struct{}

func (nopLogger) Info(string, ...any) {}
func (nopLogger) Warn(string, ...any) {}

// errHalted: a chunk stopped because another chunk of the batch failed.
var errHalted = errors.New("stopped: another chunk of the batch failed")

// sending is a chunk whose sends run in the background.
type sending struct {
	cursor string
	done   chan chunkDone
}

type chunkDone struct {
	counts Counts
	err    error
}

// run handles the chunks in order, two at a time: chunk k+1 is claimed
// while chunk k sends, and starts sending while chunk k's last messages
// are in flight, so the SMTP connections stay busy across chunk ends (the
// send slots bound the messages in flight). Done hears of the chunks in
// order, each once it completed (its sends are then recorded). A chunk
// that must wait for another attempt's claims is handled alone.
func (r *batchRun) run(ctx context.Context, chunks [][]crm.Recipient) (err error) {
	var (
		next <-chan prepared
		prev *sending
	)
	// settle waits for the chunk sending in the background and reports it.
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
		// Stop what still sends and wait for it, without reporting it: no
		// position may move past a chunk that failed. Release the claims
		// of a chunk prepared ahead, so the retry does not wait for their
		// lease.
		r.halt.Store(true)
		if prev != nil {
			// A chunk halted by the next one's failure reports that one.
			if d := <-prev.done; errors.Is(err, errHalted) && d.err != nil && !errors.Is(d.err, errHalted) {
				err = d.err
			}
		}
		if next != nil {
			r.release(ctx, (<-next).send)
		}
	}()
	for k, chunk := range chunks {
		if next == nil {
			next = r.prepareAsync(ctx, chunks[k])
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
			next = r.prepareAsync(ctx, chunks[k+1])
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

// advance reports a chunk whose sends are all recorded.
func (r *batchRun) advance(cursor string, counts Counts) {
	if r.b.Done != nil {
		r.b.Done(cursor, counts)
	}
}
