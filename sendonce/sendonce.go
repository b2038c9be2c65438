// Package sendonce sends email exactly once per send key. It is the one
// protocol behind every email the product sends — a journey's single send
// (Sender.Send) and a broadcast's pages (Sender.SendBatch):
//
//  1. claim the key in the send ledger: a key already sent, failed for good
//     or suppressed is never sent again; a claim that another attempt holds
//     and whose lease has not run out is waited for; a claim that was
//     abandoned (its lease ran out) or failed transiently is taken over;
//     a new marketing key the claim's contact policy does not allow yet
//     (minimum gap, frequency cap, over every source) is deferred;
//  2. send the message, whose Message-ID the caller derives from the key,
//     so a copy sent again after a crash carries the same one;
//  3. mark it sent as soon as the SMTP server accepted it: "accepted, not
//     yet marked" is the only state a crash can leave in doubt.
//
// A refused recipient (a hard bounce) puts the address on the suppression
// list, so no journey or broadcast tries it again; any other permanent
// refusal is recorded for that key; a transient failure is recorded so
// that the next claim takes the key over at once.
//
// This file holds the protocol for one email: Send, and sendOne for each
// email of a batch; batch.go and chunk.go run a batch's chunks around it.
// The package knows nothing of Temporal: package activities turns its
// errors into retries, its outcomes into activity results and a batch's
// progress into heartbeats. See docs/journey.md ("Exactly-once email") and
// docs/broadcast.md ("Exactly once").
package sendonce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
)

// Mailer sends one message; *email.Sender (pooled SMTP connections) is
// the production one.
type Mailer interface {
	Send(ctx context.Context, m email.Message) error
}

// Ledger is the send ledger: it decides who may send under a key and
// records what became of the send. *crm.Store (table email_log) is the
// production one; see crm.ClaimResult for what each claim answer allows.
type Ledger interface {
	// ClaimSendOutcome claims one key and checks in the same transaction
	// that the customer may still be mailed (suppression, erasure, and for
	// marketing mail the journey's stage: ClaimCancelled, and the claim's
	// contact policy: ClaimDeferred with the time it may go).
	ClaimSendOutcome(ctx context.Context, c crm.SendClaim) (crm.ClaimOutcome, error)
	// ClaimSendBatch claims many keys in one statement, with the same
	// answers but without the stage check (a broadcast's audience query
	// has applied its rules).
	ClaimSendBatch(ctx context.Context, claims []crm.SendClaim) ([]crm.ClaimOutcome, error)
	MarkSent(ctx context.Context, key string, at time.Time) error
	// MarkSentBatch records many sends in one statement: the group commit
	// of a batch's marks.
	MarkSentBatch(ctx context.Context, sends []crm.SentAt) error
	MarkFailed(ctx context.Context, key, reason string, permanent bool) error
	// MarkFailedBatch records one failure for many keys; a transient one
	// releases claims that were never tried.
	MarkFailedBatch(ctx context.Context, keys []string, reason string, permanent bool) error
	// Suppress puts an address on the suppression list (a hard bounce).
	Suppress(ctx context.Context, email, customerID, reason string) error
}

// Counter counts emails by outcome (lifecycle_emails_total);
// *activities.Metrics is the production one.
type Counter interface {
	Email(outcome string)
}

// Logger is where a batch logs; Temporal's activity logger and
// *slog.Logger both fit.
type Logger interface {
	Info(msg string, keyvals ...any)
	Warn(msg string, keyvals ...any)
}

// Outcome is what became of one email, as lifecycle_emails_total counts it.
type Outcome string

// Outcomes.
const (
	// Sent: the SMTP server accepted it now.
	Sent Outcome = "sent"
	// Duplicate: an earlier attempt sent it.
	Duplicate Outcome = "duplicate"
	// Suppressed: the address is suppressed or the customer erased.
	Suppressed Outcome = "suppressed"
	// Cancelled: planned in a stage of the journey the customer has left.
	Cancelled Outcome = "cancelled"
	// Bounced: the server refused the recipient (a hard bounce); the
	// address is now suppressed.
	Bounced Outcome = "bounced"
	// Failed: refused for good; recorded, never tried again.
	Failed Outcome = "failed"
	// Retry: a transient failure; the caller tries again later.
	Retry Outcome = "retry"
	// Deferred: the ledger's contact policy (crm.SendClaim.Policy) does
	// not allow it now; nothing was tried or recorded, and the same key
	// may be sent from Result.Until on.
	Deferred Outcome = "deferred"
)

// ErrRefused marks an error that retrying cannot change: the ledger
// refused the claim (bad input, a key that belongs to another customer, an
// erased customer). Every other error of this package is transient.
var ErrRefused = errors.New("refused by the send ledger")

// refusedError keeps the ledger's message and makes errors.Is hold for
// both ErrRefused and the ledger's own error.
type refusedError struct{ err error }

func (e refusedError) Error() string   { return e.err.Error() }
func (e refusedError) Unwrap() []error { return []error{e.err, ErrRefused} }

// claimError wraps an error of a claim; ones retrying cannot help are
// marked ErrRefused.
func claimError(err error) error {
	if errors.Is(err, crm.ErrInvalid) || errors.Is(err, crm.ErrKeyConflict) ||
		errors.Is(err, crm.ErrErased) || errors.Is(err, crm.ErrNotFound) {
		return refusedError{err}
	}
	return err
}

// Letter is one email under its send key: the claim the ledger decides on
// and the message the mailer sends (with the claim's MessageID).
type Letter struct {
	Claim   crm.SendClaim
	Message email.Message
}

// Sender runs the protocol over a ledger and a mailer. One per worker: its
// send slots and its group-committed marks are shared by all the batches
// the worker sends at once.
type Sender struct {
	ledger  Ledger
	mailer  Mailer
	metrics Counter
	// slots has one place per concurrent batch send; a message holds one
	// from just before the SMTP server can accept it until the ledger has
	// recorded it, so at most len(slots) messages are ever in doubt.
	slots chan struct{}
	marks *markGroup
}

// New returns a Sender. concurrency is how many batch messages it sends
// at once, and so the bound on the messages a crash can leave in doubt;
// set it to the SMTP pool size (0 means email.DefaultConnections).
// metrics may be nil.
func New(ledger Ledger, mailer Mailer, concurrency int, metrics Counter) *Sender {
	if concurrency <= 0 {
		concurrency = email.DefaultConnections
	}
	return &Sender{
		ledger: ledger, mailer: mailer, metrics: metrics,
		slots: make(chan struct{}, concurrency),
		marks: newMarkGroup(ledger),
	}
}

// Concurrency is how many batch messages the Sender sends at once.
func (s *Sender) Concurrency() int { return cap(s.slots) }

func (s *Sender) count(o Outcome) {
	if s.metrics != nil {
		s.metrics.Email(string(o))
	}
}

// Result is what became of one email sent with Send.
type Result struct {
	Outcome Outcome
	// Reason says why it was not sent (Suppressed, Cancelled, Failed,
	// Bounced; for Deferred the rule: campaign.ReasonMinGap or
	// campaign.ReasonFrequencyCap).
	Reason string
	// Until, for Deferred, is the earliest time the policy allows it.
	Until time.Time
}

// deferReason names the policy rule behind a deferral.
func deferReason(rule crm.Skip) string {
	if rule == crm.SkipFrequencyCap {
		return campaign.ReasonFrequencyCap
	}
	return campaign.ReasonMinGap
}

// Send sends one email exactly once per key (a journey's email):
//
//  1. claim the key (ClaimSend, which checks that the customer may still
//     be mailed);
//  2. send the message;
//  3. mark it sent straight after the SMTP reply.
//
// A key the ledger holds as sent, failed or suppressed, or whose journey
// stage the customer has left, is answered without sending; so is one
// the claim's contact policy defers (Deferred, with the time). A permanent
// SMTP refusal is recorded and answered (Failed, or Bounced with the
// address suppressed). Everything that should be tried again later — a
// claim another attempt holds, a transient failure, a ledger that does not
// answer — is an error, counted as Retry; an error wrapping ErrRefused
// will not succeed however often it is tried.
func (s *Sender) Send(ctx context.Context, l Letter) (Result, error) {
	key := l.Claim.Key
	o, err := s.ledger.ClaimSendOutcome(ctx, l.Claim)
	claim := o.Result
	if err != nil {
		err = claimError(fmt.Errorf("claim send %s: %w", key, err))
		if !isRefused(err) {
			s.count(Retry)
		}
		return Result{}, err
	}
	switch claim {
	case crm.ClaimAlreadySent:
		s.count(Duplicate)
		return Result{Outcome: Duplicate}, nil
	case crm.ClaimFailed:
		// Counted when it failed.
		return Result{Outcome: Failed, Reason: "failed permanently earlier"}, nil
	case crm.ClaimSuppressed:
		s.count(Suppressed)
		return Result{Outcome: Suppressed, Reason: "address suppressed or customer erased"}, nil
	case crm.ClaimCancelled:
		s.count(Cancelled)
		return Result{Outcome: Cancelled, Reason: "the customer left the stage it was planned in"}, nil
	case crm.ClaimDeferred:
		s.count(Deferred)
		return Result{Outcome: Deferred, Reason: deferReason(o.DeferredBy), Until: o.DeferredUntil}, nil
	case crm.ClaimInProgress:
		s.count(Retry)
		return Result{}, fmt.Errorf("send %s: another attempt is in flight; retry later", key)
	}
	if sendErr := s.mailer.Send(ctx, l.Message); sendErr != nil {
		o, err := s.failed(ctx, l.Claim, sendErr, nil)
		if err != nil {
			return Result{}, err
		}
		return Result{Outcome: o, Reason: sendErr.Error()}, nil
	}
	// Mark at once: the window between the SMTP reply and this write is the
	// only one in which a crash can cause a second (same Message-ID) send.
	if err := s.ledger.MarkSent(ctx, key, time.Now()); err != nil {
		s.count(Retry)
		return Result{}, fmt.Errorf("mark send %s sent: %w", key, err)
	}
	s.count(Sent)
	return Result{Outcome: Sent}, nil
}

// sendOne is steps 2 and 3 for one claimed letter of a batch. The message
// takes one of the Sender's send slots just before the SMTP server can
// accept it — the mailer calls BeforeEnd after the envelope's round trips,
// before the end of the data — and gives it back once the ledger recorded
// it as sent (group commit with the other senders): at most Concurrency
// messages are ever accepted and unrecorded, while a sender goes on with
// its next message as soon as the server accepted the last one. The mark
// is written in the background (marks counts it; fail stops the batch when
// the ledger cannot record it). A permanent refusal is recorded before it
// returns (Failed or Bounced). An error means the batch must stop.
func (r *batchRun) sendOne(ctx context.Context, l Letter, marks *sync.WaitGroup, fail func(error)) (Outcome, error) {
	slots := r.s.slots
	held := false
	acquire := func() error {
		if held {
			return nil
		}
		select {
		case slots <- struct{}{}:
			held = true
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	msg := l.Message
	msg.BeforeEnd = acquire
	sendErr := r.s.mailer.Send(ctx, msg)
	if sendErr == nil {
		// Counted as it went out: a message the ledger then fails to
		// record is sent again by the retry, and counted again.
		r.s.count(Sent)
		if !held {
			// A mailer that does not call BeforeEnd: take the slot now,
			// so the ledger's writes still bound the sends in flight.
			if err := acquire(); err != nil {
				err = fmt.Errorf("send %s: wait for a send slot: %w", l.Claim.Key, err)
				fail(err)
				return Retry, err
			}
		}
		marks.Go(func() {
			wctx, cancel := ledgerContext(ctx)
			defer cancel()
			err := r.s.marks.mark(wctx, crm.SentAt{Key: l.Claim.Key, At: time.Now()})
			<-slots
			if err != nil {
				// A send that cannot be recorded would be sent again by
				// the retry: stop until the ledger works.
				fail(fmt.Errorf("record send %s in the ledger: %w", l.Claim.Key, err))
			}
		})
		return Sent, nil
	}
	if held {
		// Not accepted (or its outcome is unknown and recorded below as a
		// transient failure): the slot is free again.
		defer func() { <-slots }()
	}
	wctx, cancel := ledgerContext(ctx)
	defer cancel()
	return r.s.failed(wctx, l.Claim, sendErr, r.log)
}

// failed records a send the mailer did not complete. A permanent refusal
// is recorded for good and counted Bounced (the server refused the
// recipient: the address is suppressed) or Failed, with a nil error. A
// transient failure is recorded so that the next claim takes the key over
// at once (the message may have reached the server before the connection
// broke; a resend carries the same Message-ID) and returned as an error,
// counted Retry, like a failure to record the outcome. log (may be nil)
// hears of a transient failure the ledger could not record: the retry then
// waits for the claim's lease.
func (s *Sender) failed(ctx context.Context, c crm.SendClaim, sendErr error, log Logger) (Outcome, error) {
	if !email.IsPermanent(sendErr) {
		s.count(Retry)
		if err := s.ledger.MarkFailed(ctx, c.Key, sendErr.Error(), false); err != nil && log != nil {
			log.Warn("recording a transient send failure failed; the retry waits for the claim's lease",
				"send_key", c.Key, "error", err)
		}
		return Retry, fmt.Errorf("send %s: %w", c.Key, sendErr)
	}
	if err := s.ledger.MarkFailed(ctx, c.Key, sendErr.Error(), true); err != nil {
		s.count(Retry)
		return Retry, fmt.Errorf("mark send %s failed: %w", c.Key, err)
	}
	if email.IsHardBounce(sendErr) {
		if err := s.ledger.Suppress(ctx, c.Email, c.CustomerID, crm.ReasonBounced); err != nil {
			s.count(Retry)
			return Retry, fmt.Errorf("suppress bounced address of send %s: %w", c.Key, err)
		}
		s.count(Bounced)
		return Bounced, nil
	}
	s.count(Failed)
	return Failed, nil
}

// markGroup records sent messages with group commit: a sender waits until
// its mark is written, and the marks that arrive while a write is in
// flight go together in the next statement. One per Sender, so concurrent
// batches share the statements too.
type markGroup struct {
	ledger Ledger

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

func newMarkGroup(ledger Ledger) *markGroup {
	g := &markGroup{ledger: ledger}
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

	b.err = g.ledger.MarkSentBatch(ctx, b.sends)
	close(b.done)

	g.mu.Lock()
	g.writing = false
	g.idle.Signal()
	g.mu.Unlock()
	return b.err
}

func isRefused(err error) bool { return errors.Is(err, ErrRefused) }

// The production ledger and mailer.
var (
	_ Ledger = (*crm.Store)(nil)
	_ Mailer = (*email.Sender)(nil)
)
