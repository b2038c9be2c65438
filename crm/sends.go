package crm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimResult is what ClaimSend decided about one send key. Only ClaimNew
// and ClaimRetry allow the caller to send.
type ClaimResult string

const (
	// ClaimNew means the key was not known; the ledger row is inserted with
	// status claimed. The caller may send, then calls MarkSent.
	ClaimNew ClaimResult = "new"

	// ClaimAlreadySent means the email went out earlier. The caller must NOT
	// send again.
	ClaimAlreadySent ClaimResult = "already_sent"

	// ClaimRetry means an earlier attempt claimed the key and then either
	// failed transiently (MarkFailed with permanent=false) or never reported
	// back (neither MarkSent nor MarkFailed) and its lease ran out: the worker
	// probably died. The caller may send again; attempts is incremented.
	//
	// The one window that cannot be closed is "the SMTP server accepted the
	// message, then the worker died before MarkSent": the retry then sends
	// the message a second time. It does so with the SAME Message-ID (the
	// caller derives the Message-ID from the send key, and ClaimSend keeps
	// the first one), so receivers and Mailpit can deduplicate it. The
	// window is narrowed by calling MarkSent immediately after the SMTP
	// DATA reply, before anything else.
	ClaimRetry ClaimResult = "retry"

	// ClaimInProgress means another attempt holds the claim and its lease has
	// not run out (two activity attempts running at once, for example after a
	// start-to-close timeout). The caller must not send now; it should fail
	// with a retryable error and claim again later, when it will get
	// ClaimAlreadySent, ClaimFailed or, once the lease ran out, ClaimRetry.
	ClaimInProgress ClaimResult = "in_progress"

	// ClaimFailed means an earlier attempt failed permanently (MarkFailed with
	// permanent=true). The caller must not send.
	ClaimFailed ClaimResult = "failed"

	// ClaimSuppressed means the address is on the suppression list (for
	// marketing mail any reason; for transactional mail any reason but
	// unsubscribed), the customer the email is about was erased, or the send
	// was marked suppressed earlier. The caller must not send.
	ClaimSuppressed ClaimResult = "suppressed"

	// ClaimCancelled means a marketing email planned in an earlier stage of
	// the customer's journey (SendClaim.StageSeq) while the CRM already holds
	// a later stage of the same journey: the customer bought, moved on or left
	// while the send waited or retried. The ledger row is kept as suppressed,
	// so a retry gets ClaimSuppressed. The caller must not send.
	ClaimCancelled ClaimResult = "cancelled"

	// ClaimDeferred means the contact policy (SendClaim.Policy) does not
	// allow this marketing email now: another marketing email went out (or
	// is going out) to the customer within the minimum gap, or the
	// frequency cap is reached. Nothing is written to the ledger, so the
	// same key may be claimed again from ClaimOutcome.DeferredUntil on.
	// The caller must not send now.
	ClaimDeferred ClaimResult = "deferred"
)

// MaySend reports whether the caller may send the email.
func (r ClaimResult) MaySend() bool { return r == ClaimNew || r == ClaimRetry }

// Send ledger statuses.
const (
	SendClaimed    = "claimed"
	SendSent       = "sent"
	SendFailed     = "failed"
	SendSuppressed = "suppressed"
)

// DefaultSendLease is how long a claim is held when SendClaim.Lease is
// zero: a claim younger than its lease is taken to be in flight.
const DefaultSendLease = 2 * time.Minute

// SendClaim asks to send one email.
type SendClaim struct {
	// Key is the idempotency key of the send: customer / campaign version /
	// step, for example "cus_42/welcome@3/day-0".
	Key        string
	CustomerID string
	Email      string
	Template   string
	// Category is CategoryMarketing or CategoryTransactional.
	Category string
	// MessageID is the Message-ID the email carries, derived from Key by
	// the caller so that a retry sends the same one. The ledger keeps the
	// Message-ID of the first claim.
	MessageID string
	// Lease is how long this attempt may take before another attempt may
	// take the send over (ClaimRetry); zero means DefaultSendLease. Set it
	// at least to the sending activity's start-to-close timeout.
	Lease time.Duration
	// Journey and StageSeq, when set, say in which journey instance and
	// stage (its stage counter, see Transition) the email was planned: a
	// marketing email is cancelled (ClaimCancelled) once the contact holds
	// a later stage of that journey.
	Journey  string
	StageSeq int
	// Policy, for a marketing email, is checked when its key is new: the
	// claim is ClaimDeferred when the customer's marketing sends in the
	// ledger (from any source) break it. Nil: no check. Ignored for
	// transactional mail; a key the ledger holds keeps its answers.
	Policy *ContactPolicy
}

// checksPolicy reports whether the claim is checked against its policy.
func (c SendClaim) checksPolicy() bool { return c.Category == CategoryMarketing && c.Policy.active() }

func (c *SendClaim) normalize() {
	c.Key = strings.TrimSpace(c.Key)
	c.CustomerID = strings.TrimSpace(c.CustomerID)
	c.Email = strings.TrimSpace(c.Email)
	c.MessageID = strings.TrimSpace(c.MessageID)
}

func (c SendClaim) validate() error {
	if err := requireText("send_key", c.Key); err != nil {
		return err
	}
	if err := requireText("customer_id", c.CustomerID); err != nil {
		return err
	}
	if err := validEmail("email", c.Email, true); err != nil {
		return err
	}
	if err := requireText("template", c.Template); err != nil {
		return err
	}
	if err := requireOneOf("category", c.Category, []string{CategoryMarketing, CategoryTransactional}); err != nil {
		return err
	}
	if err := requireText("message_id", c.MessageID); err != nil {
		return err
	}
	if c.Lease < 0 {
		return invalid("lease", "%v is negative", c.Lease)
	}
	return c.Policy.validate()
}

// blocks reports whether a suppression with reason stops mail of category.
func blocks(reason, category string) bool {
	if reason == "" {
		return false
	}
	return reason != ReasonUnsubscribed || category == CategoryMarketing
}

// ClaimSend claims the send key before an email is sent; see ClaimResult for
// what each answer allows. It is ClaimSendOutcome's Result: a caller that
// passes a Policy and needs to know when a deferred email may go calls
// ClaimSendOutcome.
func (s *Store) ClaimSend(ctx context.Context, c SendClaim) (ClaimResult, error) {
	o, err := s.ClaimSendOutcome(ctx, c)
	return o.Result, err
}

// ClaimSendOutcome claims the send key before an email is sent and answers
// with the ClaimOutcome: the ClaimResult (see it for what each answer
// allows), when the lease runs out (this claim's, or for ClaimInProgress
// the other attempt's) and, for ClaimDeferred, when the email may go and
// which rule deferred it.
//
// Two concurrent claims of one key never both get ClaimNew (or
// ClaimRetry): the ledger row is inserted with INSERT … ON CONFLICT and an
// existing row is examined under SELECT … FOR UPDATE. A suppressed address
// is recorded in the ledger with status suppressed. A new key of a
// marketing claim with a Policy is checked against the customer's
// marketing sends under a per-customer lock (policy.go), so two claims for
// one customer at once never both pass the gap; a deferred claim writes
// nothing.
func (s *Store) ClaimSendOutcome(ctx context.Context, c SendClaim) (ClaimOutcome, error) {
	c.normalize()
	if err := c.validate(); err != nil {
		return ClaimOutcome{}, fmt.Errorf("claim send %q: %w", c.Key, err)
	}
	lease := c.Lease
	if lease == 0 {
		lease = DefaultSendLease
	}
	var out ClaimOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = ClaimOutcome{Key: c.Key}
		if c.checksPolicy() {
			// First, like a batch: no other lock is held while waiting.
			if err := lockForPolicy(ctx, tx, []string{c.CustomerID}); err != nil {
				return fmt.Errorf("lock the customer for the contact policy: %w", err)
			}
		}
		var reason string
		err := tx.QueryRow(ctx, `SELECT reason FROM suppressions WHERE email_hash = $1`, HashEmail(c.Email)).Scan(&reason)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// May the customer still be mailed? Read in the claim's
		// transaction: an erase, an unsubscribe or a stage change the CRM
		// recorded before this claim stops the send, however long it
		// waited or retried.
		now, err := customerNow(ctx, tx, c.CustomerID)
		if err != nil {
			return err
		}
		if now.erased {
			reason = ReasonErased
		}
		blocked := blocks(reason, c.Category)
		suppressedNote := ""
		if blocked {
			suppressedNote = "suppressed: " + reason
		}
		cancelled := !blocked && c.Category == CategoryMarketing && c.Journey != "" && c.StageSeq > 0 &&
			now.journey == c.Journey && now.stageSeq > c.StageSeq
		if cancelled {
			blocked = true
			suppressedNote = fmt.Sprintf("cancelled: the customer moved on to stage %s", now.stage)
		}
		if reason == ReasonErased {
			// The ledger must not bring an erased person's address back.
			c.Email = ""
		}
		if !blocked && c.checksPolicy() {
			deferred, err := deferClaims(ctx, tx, []policyCheck{{
				key: c.Key, customerID: c.CustomerID, emailHash: HashEmail(c.Email), policy: *c.Policy}})
			if err != nil {
				return fmt.Errorf("check the contact policy: %w", err)
			}
			if d, ok := deferred[c.Key]; ok {
				out = d
				return nil
			}
		}

		var leaseUntil time.Time
		err = tx.QueryRow(ctx, `
INSERT INTO email_log (send_key, customer_id, email, template, category, message_id,
    status, attempts, claimed_at, lease_until, error)
VALUES ($1, $2, $3, $4, $5, $6,
    CASE WHEN $7 THEN 'suppressed' ELSE 'claimed' END, CASE WHEN $7 THEN 0 ELSE 1 END,
    now(), now() + $8::bigint * interval '1 microsecond', $9)
ON CONFLICT (send_key) DO NOTHING
RETURNING lease_until`,
			c.Key, c.CustomerID, c.Email, c.Template, c.Category, c.MessageID,
			blocked, lease.Microseconds(), suppressedNote).Scan(&leaseUntil)
		switch {
		case err == nil:
			switch {
			case cancelled:
				out.Result = ClaimCancelled
			case blocked:
				out.Result = ClaimSuppressed
			default:
				out.Result, out.LeaseUntil = ClaimNew, leaseUntil
			}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}

		var customerID, status string
		var permanent, leaseActive bool
		err = tx.QueryRow(ctx, `
SELECT customer_id, status, permanent, lease_until, lease_until > now()
FROM email_log WHERE send_key = $1 FOR UPDATE`, c.Key).Scan(&customerID, &status, &permanent, &leaseUntil, &leaseActive)
		if err != nil {
			return err
		}
		if customerID != c.CustomerID {
			return fmt.Errorf("%w: send key belongs to customer %q", ErrKeyConflict, customerID)
		}
		switch {
		case status == SendSent:
			out.Result = ClaimAlreadySent
			return nil
		case status == SendSuppressed:
			out.Result = ClaimSuppressed
			return nil
		case status == SendFailed && permanent:
			out.Result = ClaimFailed
			return nil
		case status == SendClaimed && leaseActive:
			out.Result, out.LeaseUntil = ClaimInProgress, leaseUntil
			return nil
		case blocked:
			// Suppressed or cancelled since the earlier attempt: stop here.
			out.Result = ClaimSuppressed
			if cancelled {
				out.Result = ClaimCancelled
			}
			_, err = tx.Exec(ctx, `
UPDATE email_log SET status = 'suppressed', error = $2, updated_at = now() WHERE send_key = $1`,
				c.Key, suppressedNote)
			return err
		default:
			// An abandoned claim, or a transient failure.
			out.Result = ClaimRetry
			return tx.QueryRow(ctx, `
UPDATE email_log SET status = 'claimed', attempts = attempts + 1, email = $2, claimed_at = now(),
    lease_until = now() + $3::bigint * interval '1 microsecond', updated_at = now()
WHERE send_key = $1
RETURNING lease_until`, c.Key, c.Email, lease.Microseconds()).Scan(&out.LeaseUntil)
		}
	})
	if err != nil {
		return ClaimOutcome{}, fmt.Errorf("claim send %q: %w", c.Key, err)
	}
	return out, nil
}

// customerState is what a claim reads of the contact the email is about.
type customerState struct {
	erased   bool
	journey  string
	stageSeq int
	stage    string
}

// customerNow reads the contact's erasure and journey stage, with a share
// lock so that an erase or a stage change waits for the claim (or the
// claim for them). A customer without a contact row has nothing to say.
func customerNow(ctx context.Context, tx pgx.Tx, customerID string) (customerState, error) {
	var st customerState
	err := tx.QueryRow(ctx, `
SELECT erased_at IS NOT NULL, journey, stage_seq, stage FROM contacts WHERE customer_id = $1 FOR SHARE`,
		customerID).Scan(&st.erased, &st.journey, &st.stageSeq, &st.stage)
	if errors.Is(err, pgx.ErrNoRows) {
		return customerState{}, nil
	}
	return st, err
}

// MarkSent records that the SMTP server accepted the message at at (zero
// means now). Call it immediately after the SMTP DATA reply. Marking a send
// twice keeps the first time. A send is marked sent even when it had been
// marked failed or suppressed meanwhile: the message did go out. An unknown
// key is ErrNotFound.
func (s *Store) MarkSent(ctx context.Context, key string, at time.Time) error {
	if err := requireText("send_key", key); err != nil {
		return fmt.Errorf("mark sent: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `
UPDATE email_log SET status = 'sent', sent_at = COALESCE(sent_at, $2, now()), error = '',
    permanent = false, updated_at = now()
WHERE send_key = $1`, key, nullTime(at))
	if err != nil {
		return fmt.Errorf("mark sent %q: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("mark sent %q: %w", key, ErrNotFound)
	}
	return nil
}

// MarkFailed records a failed attempt with its reason. A permanent failure
// (a rejected address, a template that does not render) makes later claims
// answer ClaimFailed; a transient one (SMTP unreachable) makes the next
// claim answer ClaimRetry. A permanent failure is never downgraded, and a
// send already sent or suppressed keeps that status. An unknown key is
// ErrNotFound.
func (s *Store) MarkFailed(ctx context.Context, key, reason string, permanent bool) error {
	if err := requireText("send_key", key); err != nil {
		return fmt.Errorf("mark failed: %w", err)
	}
	if err := requireText("reason", reason); err != nil {
		return fmt.Errorf("mark failed %q: %w", key, err)
	}
	return s.markEnd(ctx, "mark failed", key, `
UPDATE email_log SET status = 'failed', permanent = (status = 'failed' AND permanent) OR $3,
    error = $2, updated_at = now()
WHERE send_key = $1 AND status IN ('claimed', 'failed')`, key, reason, permanent)
}

// MarkSuppressed records that the send was not made because the address
// is suppressed (reason says why). Later claims answer ClaimSuppressed. A
// send already sent keeps that status. An unknown key is ErrNotFound.
func (s *Store) MarkSuppressed(ctx context.Context, key, reason string) error {
	if err := requireText("send_key", key); err != nil {
		return fmt.Errorf("mark suppressed: %w", err)
	}
	if err := requireText("reason", reason); err != nil {
		return fmt.Errorf("mark suppressed %q: %w", key, err)
	}
	return s.markEnd(ctx, "mark suppressed", key, `
UPDATE email_log SET status = 'suppressed', error = $2, updated_at = now()
WHERE send_key = $1 AND status <> 'sent'`, key, reason)
}

// markEnd runs a conditional update of a ledger row; when it changes
// nothing it tells an unknown key (ErrNotFound) from a row whose status
// the update must not overwrite (success, nothing to do).
func (s *Store) markEnd(ctx context.Context, op, key, update string, args ...any) error {
	tag, err := s.pool.Exec(ctx, update, args...)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM email_log WHERE send_key = $1)`, key).Scan(&exists); err != nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	if !exists {
		return fmt.Errorf("%s %q: %w", op, key, ErrNotFound)
	}
	return nil
}

// Send is one row of the send ledger.
type Send struct {
	Key        string
	CustomerID string
	Email      string
	Template   string
	Category   string
	MessageID  string
	Status     string
	Permanent  bool
	Attempts   int
	ClaimedAt  time.Time
	SentAt     time.Time // zero until sent
	Error      string
	UpdatedAt  time.Time
}

// GetSend returns the ledger row of a send key, or ErrNotFound.
func (s *Store) GetSend(ctx context.Context, key string) (Send, error) {
	var r Send
	var sentAt *time.Time
	err := s.pool.QueryRow(ctx, `
SELECT send_key, customer_id, email, template, category, message_id, status, permanent,
    attempts, claimed_at, sent_at, error, updated_at
FROM email_log WHERE send_key = $1`, key).Scan(&r.Key, &r.CustomerID, &r.Email, &r.Template,
		&r.Category, &r.MessageID, &r.Status, &r.Permanent, &r.Attempts, &r.ClaimedAt, &sentAt,
		&r.Error, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Send{}, fmt.Errorf("get send %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Send{}, fmt.Errorf("get send %q: %w", key, err)
	}
	r.SentAt = timeOrZero(sentAt)
	return r, nil
}
