package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The send ledger in bulk, for a broadcast's pages: one statement claims a
// chunk's keys, one marks many sends sent (group commit), one releases
// claims that were not tried. The rules are ClaimSend's and MarkSent's
// (sends.go).

// ClaimOutcome is ClaimSendBatch's answer for one send key.
type ClaimOutcome struct {
	Key    string
	Result ClaimResult
	// LeaseUntil is when the claim of another attempt runs out (for
	// ClaimInProgress: claim again after it), or when this claim does
	// (ClaimNew, ClaimRetry).
	LeaseUntil time.Time
	// DeferredUntil, for ClaimDeferred, is the earliest time the contact
	// policy allows the email (claim the same key again then), and
	// DeferredBy the rule that set it: SkipMinGap or SkipFrequencyCap.
	DeferredUntil time.Time
	DeferredBy    Skip
}

// ClaimSendBatch claims many send keys in one transaction, with the same
// rules and answers as ClaimSend for each (see ClaimResult): new keys are
// inserted in one INSERT … ON CONFLICT DO NOTHING RETURNING, the rest are
// examined under SELECT … FOR UPDATE and updated in bulk. The suppression
// list is checked with HashEmail (computed here, in Go). Outcomes are in
// the order of claims. A key must not appear twice in one batch.
//
// Claims with a Policy (marketing) whose keys are new are checked first,
// under their customers' locks, in one statement for the batch, exactly as
// ClaimSendOutcome checks one (policy.go); the deferred ones
// (ClaimDeferred) are not inserted.
func (s *Store) ClaimSendBatch(ctx context.Context, claims []SendClaim) ([]ClaimOutcome, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	n := len(claims)
	keys, customers, emails := make([]string, n), make([]string, n), make([]string, n)
	templates, categories := make([]string, n), make([]string, n)
	messageIDs, hashes := make([]string, n), make([]string, n)
	leases := make([]int64, n)
	index := make(map[string]int, n)
	for i := range claims {
		c := claims[i]
		c.normalize()
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("claim sends: claims[%d] (%q): %w", i, c.Key, err)
		}
		if _, dup := index[c.Key]; dup {
			return nil, fmt.Errorf("claim sends: claims[%d]: %w", i, invalid("send_key", "%q appears twice in the batch", c.Key))
		}
		index[c.Key] = i
		lease := c.Lease
		if lease == 0 {
			lease = DefaultSendLease
		}
		keys[i], customers[i], emails[i], templates[i] = c.Key, c.CustomerID, c.Email, c.Template
		categories[i], messageIDs[i], hashes[i], leases[i] = c.Category, c.MessageID, HashEmail(c.Email), lease.Microseconds()
	}
	var checks []policyCheck
	for i := range claims {
		if c := claims[i]; c.checksPolicy() {
			checks = append(checks, policyCheck{key: keys[i], customerID: customers[i], emailHash: hashes[i], policy: *c.Policy})
		}
	}
	out := make([]ClaimOutcome, n)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The contact policy first: the deferred claims are answered and
		// left out of the insert.
		ins := make([]int, 0, n)
		var deferred map[string]ClaimOutcome
		if len(checks) > 0 {
			ids := make([]string, len(checks))
			for j, c := range checks {
				ids[j] = c.customerID
			}
			if err := lockForPolicy(ctx, tx, ids); err != nil {
				return fmt.Errorf("lock the customers for the contact policy: %w", err)
			}
			var err error
			if deferred, err = deferClaims(ctx, tx, checks); err != nil {
				return fmt.Errorf("check the contact policy: %w", err)
			}
		}
		for i := range n {
			if d, ok := deferred[keys[i]]; ok {
				out[i] = d
			} else {
				ins = append(ins, i)
			}
		}
		if len(ins) == 0 {
			return nil
		}
		// New keys. Rows are inserted in key order, so two batches that
		// overlap take their locks in the same order.
		rows, err := tx.Query(ctx, `
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
        AS t(send_key, customer_id, email, template, category, message_id, email_hash, lease_us)
), decided AS (
    SELECT i.*, s.reason,
        s.reason IS NOT NULL AND (s.reason <> 'unsubscribed' OR i.category = 'marketing') AS blocked
    FROM input i LEFT JOIN LATERAL (
        -- a probe per claim (see markSentBatch on joins to unnest)
        SELECT x.reason FROM suppressions x WHERE x.email_hash = i.email_hash LIMIT 1
    ) s ON true
)
INSERT INTO email_log (send_key, customer_id, email, template, category, message_id,
    status, attempts, claimed_at, lease_until, error)
SELECT send_key, customer_id, email, template, category, message_id,
    CASE WHEN blocked THEN 'suppressed' ELSE 'claimed' END, CASE WHEN blocked THEN 0 ELSE 1 END,
    now(), now() + lease_us * interval '1 microsecond',
    CASE WHEN blocked THEN 'suppressed: ' || reason ELSE '' END
FROM decided ORDER BY send_key
ON CONFLICT (send_key) DO NOTHING
RETURNING send_key, status, lease_until`,
			pick(keys, ins), pick(customers, ins), pick(emails, ins), pick(templates, ins), pick(categories, ins),
			pick(messageIDs, ins), pick(hashes, ins), pick(leases, ins))
		if err != nil {
			return err
		}
		done := make([]bool, n)
		for i := range n {
			done[i] = out[i].Result == ClaimDeferred
		}
		for rows.Next() {
			var key, status string
			var leaseUntil time.Time
			if err := rows.Scan(&key, &status, &leaseUntil); err != nil {
				rows.Close()
				return err
			}
			i := index[key]
			done[i] = true
			out[i] = ClaimOutcome{Key: key, Result: ClaimNew, LeaseUntil: leaseUntil}
			if status == SendSuppressed {
				out[i] = ClaimOutcome{Key: key, Result: ClaimSuppressed}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var existing []string
		for i, d := range done {
			if !d {
				existing = append(existing, keys[i])
			}
		}
		if len(existing) == 0 {
			return nil
		}
		return claimExisting(ctx, tx, existing, index, claims, hashes, out)
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d sends: %w", n, err)
	}
	return out, nil
}

// pick returns the elements of all at the indexes idx, in their order.
func pick[T any](all []T, idx []int) []T {
	if len(idx) == len(all) {
		return all // every one, in order
	}
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = all[i]
	}
	return out
}

// claimExisting decides, under row locks, the keys the ledger already
// holds, exactly as ClaimSend does for one.
func claimExisting(ctx context.Context, tx pgx.Tx, existing []string, index map[string]int, claims []SendClaim, hashes []string, out []ClaimOutcome) error {
	var hs []string
	for _, k := range existing {
		hs = append(hs, hashes[index[k]])
	}
	reasons := map[string]string{}
	rows, err := tx.Query(ctx, `SELECT email_hash, reason FROM suppressions WHERE email_hash = ANY($1::text[])`, hs)
	if err != nil {
		return err
	}
	for rows.Next() {
		var h, r string
		if err := rows.Scan(&h, &r); err != nil {
			rows.Close()
			return err
		}
		reasons[h] = r
	}
	if err := rows.Err(); err != nil {
		return err
	}

	slices.Sort(existing)
	rows, err = tx.Query(ctx, `
SELECT send_key, customer_id, status, permanent, lease_until, lease_until > now()
FROM email_log WHERE send_key = ANY($1::text[]) ORDER BY send_key FOR UPDATE`, existing)
	if err != nil {
		return err
	}
	var (
		retryKeys, retryEmails []string
		retryLeases            []int64
		suppKeys, suppNotes    []string
		seen                   int
	)
	for rows.Next() {
		var key, customerID, status string
		var permanent, leaseActive bool
		var leaseUntil time.Time
		if err := rows.Scan(&key, &customerID, &status, &permanent, &leaseUntil, &leaseActive); err != nil {
			rows.Close()
			return err
		}
		seen++
		i := index[key]
		c := claims[i]
		if customerID != strings.TrimSpace(c.CustomerID) {
			rows.Close()
			return fmt.Errorf("%w: send key %q belongs to customer %q", ErrKeyConflict, key, customerID)
		}
		reason := reasons[hashes[i]]
		o := ClaimOutcome{Key: key}
		switch {
		case status == SendSent:
			o.Result = ClaimAlreadySent
		case status == SendSuppressed:
			o.Result = ClaimSuppressed
		case status == SendFailed && permanent:
			o.Result = ClaimFailed
		case status == SendClaimed && leaseActive:
			o.Result, o.LeaseUntil = ClaimInProgress, leaseUntil
		case blocks(reason, c.Category):
			o.Result = ClaimSuppressed
			suppKeys = append(suppKeys, key)
			suppNotes = append(suppNotes, "suppressed: "+reason)
		default:
			o.Result = ClaimRetry
			lease := c.Lease
			if lease == 0 {
				lease = DefaultSendLease
			}
			retryKeys = append(retryKeys, key)
			retryEmails = append(retryEmails, strings.TrimSpace(c.Email))
			retryLeases = append(retryLeases, lease.Microseconds())
		}
		out[i] = o
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(existing) {
		// A row that conflicted on insert and is gone now: deleted by
		// something else meanwhile. Let the caller retry.
		return errors.New("send ledger rows disappeared during the claim; retry")
	}
	if len(suppKeys) > 0 {
		if _, err := tx.Exec(ctx, `
UPDATE email_log l SET status = 'suppressed', error = t.note, updated_at = now()
FROM unnest($1::text[], $2::text[]) AS t(send_key, note)
WHERE l.send_key = t.send_key AND l.send_key = ANY($1::text[])`, suppKeys, suppNotes); err != nil {
			return err
		}
	}
	if len(retryKeys) > 0 {
		rows, err := tx.Query(ctx, `
UPDATE email_log l SET status = 'claimed', attempts = l.attempts + 1, email = t.email, claimed_at = now(),
    lease_until = now() + t.lease_us * interval '1 microsecond', updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(send_key, email, lease_us)
WHERE l.send_key = t.send_key AND l.send_key = ANY($1::text[])
RETURNING l.send_key, l.lease_until`, retryKeys, retryEmails, retryLeases)
		if err != nil {
			return err
		}
		for rows.Next() {
			var key string
			var until time.Time
			if err := rows.Scan(&key, &until); err != nil {
				rows.Close()
				return err
			}
			out[index[key]].LeaseUntil = until
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// SentAt is one send to record as sent.
type SentAt struct {
	Key string
	// At is when the SMTP server accepted the message; zero means now.
	At time.Time
}

// MarkSentBatch is MarkSent for many keys in one statement: each send is
// marked sent (keeping the first sent time). Keys the ledger does not hold
// are reported as ErrNotFound after the others were marked.
func (s *Store) MarkSentBatch(ctx context.Context, sends []SentAt) error {
	if len(sends) == 0 {
		return nil
	}
	keys := make([]string, len(sends))
	ats := make([]*time.Time, len(sends))
	for i, x := range sends {
		if err := requireText("send_key", x.Key); err != nil {
			return fmt.Errorf("mark sent: sends[%d]: %w", i, err)
		}
		keys[i], ats[i] = x.Key, nullTime(x.At)
	}
	tag, err := s.pool.Exec(ctx, markSentBatch, keys, ats)
	if err != nil {
		return fmt.Errorf("mark %d sends sent: %w", len(sends), err)
	}
	if int(tag.RowsAffected()) == len(sends) {
		return nil
	}
	return s.missingKeys(ctx, "mark sent", keys)
}

// markSentBatch records sends as sent. The "l.send_key = ANY($1)" repeats
// the join's condition so that the ledger is read through its primary key:
// joined to unnest() alone, PostgreSQL hash-joins the whole ledger once it
// thinks that cheaper, and a broadcast marks sends a few at a time — every
// mark then read every row the ledger ever had
// (TestBroadcastStatementsProbeTheLedgerByKey). The updates below that
// join unnest() carry the same condition.
const markSentBatch = `
UPDATE email_log l SET status = 'sent', sent_at = COALESCE(l.sent_at, t.at, now()), error = '',
    permanent = false, updated_at = now()
FROM unnest($1::text[], $2::timestamptz[]) AS t(send_key, at)
WHERE l.send_key = t.send_key AND l.send_key = ANY($1::text[])`

// MarkFailedBatch is MarkFailed for many keys with one reason: a permanent
// failure makes later claims answer ClaimFailed, a transient one
// ClaimRetry (so it also releases claims that were never attempted).
// Sends already sent or suppressed keep their status.
func (s *Store) MarkFailedBatch(ctx context.Context, keys []string, reason string, permanent bool) error {
	if len(keys) == 0 {
		return nil
	}
	if err := requireText("reason", reason); err != nil {
		return fmt.Errorf("mark failed: %w", err)
	}
	for i, k := range keys {
		if err := requireText("send_key", k); err != nil {
			return fmt.Errorf("mark failed: keys[%d]: %w", i, err)
		}
	}
	_, err := s.pool.Exec(ctx, `
UPDATE email_log SET status = 'failed', permanent = (status = 'failed' AND permanent) OR $3,
    error = $2, updated_at = now()
WHERE send_key = ANY($1::text[]) AND status IN ('claimed', 'failed')`, keys, reason, permanent)
	if err != nil {
		return fmt.Errorf("mark %d sends failed: %w", len(keys), err)
	}
	return nil
}

// missingKeys reports the keys of a batch the ledger does not hold.
func (s *Store) missingKeys(ctx context.Context, op string, keys []string) error {
	rows, err := s.pool.Query(ctx, `
SELECT k FROM unnest($1::text[]) AS k WHERE NOT EXISTS (SELECT 1 FROM email_log WHERE send_key = k)`, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s %q: %w", op, missing, ErrNotFound)
}
