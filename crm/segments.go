package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Segment selects contacts for a broadcast. Empty fields select everything;
// set fields are combined with AND.
type Segment struct {
	// Stages: the contact is in one of these stages.
	Stages []string
	// MinScore: the contact's lead score is at least this.
	MinScore *int
	// LeadSources: the contact came from one of these lead sources.
	LeadSources []string
	// CustomerIDPrefix: the customer ID starts with this (case-sensitive).
	CustomerIDPrefix string
}

// Validate checks the segment; errors are *ValidationError naming the
// field ("segment.stages[1]").
func (g Segment) Validate() error {
	for i, st := range g.Stages {
		if err := requireOneOf("segment.stages["+strconv.Itoa(i)+"]", st, Stages); err != nil {
			return err
		}
	}
	for i, src := range g.LeadSources {
		if err := requireOneOf("segment.lead_sources["+strconv.Itoa(i)+"]", src, LeadSources); err != nil {
			return err
		}
	}
	if p := g.CustomerIDPrefix; p != "" && strings.TrimSpace(p) != p {
		return invalid("segment.customer_id_prefix", "has leading or trailing white space")
	}
	return nil
}

// MarketingCap is a per-customer frequency cap for marketing mail: at most
// Max marketing emails in any Window.
type MarketingCap struct {
	Max    int
	Window time.Duration
}

// SegmentQuery asks for one page of a segment's marketing audience.
type SegmentQuery struct {
	Segment Segment
	// After is the keyset cursor: only contacts whose customer_id sorts
	// after it are returned ("" starts at the beginning).
	After string
	// Limit is the page size (1 to MaxSegmentPage).
	Limit int
	// SendKeySuffix names the message being sent: its send key for a
	// contact is CustomerID + SendKeySuffix (e.g. "/broadcast/xmas-2026").
	// Contacts whose key the send ledger already holds as sent, failed
	// permanently or suppressed are flagged (SkipAlreadySent, SkipFailed,
	// SkipSuppressed). Empty: the ledger is not consulted.
	SendKeySuffix string
	// Cap flags contacts that already received Cap.Max marketing emails
	// within Cap.Window (SkipFrequencyCap). Nil: no cap.
	Cap *MarketingCap
}

// MaxSegmentPage is the largest SegmentQuery.Limit.
const MaxSegmentPage = 10000

// Skip says why a contact of a segment page must not be sent the message
// now; SkipNone means it may (subject to ClaimSend).
type Skip string

// Reasons to skip a recipient.
const (
	SkipNone Skip = ""
	// SkipAlreadySent: the ledger holds the send key as sent.
	SkipAlreadySent Skip = "already_sent"
	// SkipFailed: the send key failed permanently earlier.
	SkipFailed Skip = "failed"
	// SkipSuppressed: the address is on the suppression list (any reason:
	// the message is marketing mail), or the send key was suppressed.
	SkipSuppressed Skip = "suppressed"
	// SkipFrequencyCap: the contact got Cap.Max marketing emails within
	// Cap.Window.
	SkipFrequencyCap Skip = "frequency_cap"
)

// Recipient is one contact of a segment page with what the message needs
// and the rules' verdict.
type Recipient struct {
	CustomerID string
	Email      string
	FirstName  string
	LastName   string
	Company    string
	Stage      string
	Score      int
	LeadSource string
	// TimeZone is the contact's IANA zone, "" when unknown.
	TimeZone string
	Skip     Skip
	// SuppressionReason is the suppression list's reason when the address
	// is on it.
	SuppressionReason string
	// RecentMarketing counts the marketing emails sent to the contact
	// within Cap.Window (0 without a cap).
	RecentMarketing int
}

func (q SegmentQuery) validate() error {
	if err := q.Segment.Validate(); err != nil {
		return err
	}
	if q.Limit < 1 || q.Limit > MaxSegmentPage {
		return invalid("limit", "%d is not between 1 and %d", q.Limit, MaxSegmentPage)
	}
	if q.Cap != nil {
		if q.Cap.Max < 1 {
			return invalid("cap.max", "%d is less than 1", q.Cap.Max)
		}
		if q.Cap.Window <= 0 {
			return invalid("cap.window", "%v is not positive", q.Cap.Window)
		}
	}
	return nil
}

// SegmentPage returns the next page of the segment's marketing audience
// after q.After, in customer_id order (keyset pagination: pass the last
// CustomerID as the next After; a page shorter than q.Limit is the last).
//
// The rules are applied in SQL, in one statement:
//
//   - only contacts that may get marketing mail at all are returned: not
//     erased, consent given, an address on file; and only those matching
//     the segment's filters;
//   - the suppression list is joined on the address hash, computed in SQL
//     exactly as HashEmail computes it (sha256 of the lower-cased address,
//     hex) — ClaimSendBatch checks it again with the hash computed in Go;
//   - the send ledger is joined on the message's send key, so a page that
//     is processed again (a retried activity) sees what already went out;
//   - the frequency cap counts the contact's marketing sends within the
//     window (email_log_cap_idx).
//
// Flagged contacts are returned with Skip set, so the caller can count them.
func (s *Store) SegmentPage(ctx context.Context, q SegmentQuery) ([]Recipient, error) {
	if err := q.validate(); err != nil {
		return nil, fmt.Errorf("segment page: %w", err)
	}
	args := []any{q.After, q.Limit}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	// Only the filters that are set go into the statement, so each
	// combination gets a plan that fits it (a stage segment can walk
	// contacts_audience_stage_idx).
	var where []string
	if len(q.Segment.Stages) > 0 {
		if len(q.Segment.Stages) == 1 {
			where = append(where, "c.stage = "+arg(q.Segment.Stages[0]))
		} else {
			where = append(where, "c.stage = ANY("+arg(q.Segment.Stages)+"::text[])")
		}
	}
	if q.Segment.MinScore != nil {
		where = append(where, "c.score >= "+arg(*q.Segment.MinScore))
	}
	if len(q.Segment.LeadSources) > 0 {
		where = append(where, "c.lead_source = ANY("+arg(q.Segment.LeadSources)+"::text[])")
	}
	if q.Segment.CustomerIDPrefix != "" {
		where = append(where, "starts_with(c.customer_id, "+arg(q.Segment.CustomerIDPrefix)+")")
	}
	filters := ""
	for _, w := range where {
		filters += "\n      AND " + w
	}

	ledgerJoin, ledgerSkip := "", ""
	if q.SendKeySuffix != "" {
		ledgerJoin = "\nLEFT JOIN email_log l ON l.send_key = p.customer_id || " + arg(q.SendKeySuffix)
		ledgerSkip = `
        WHEN l.status = 'sent' THEN 'already_sent'
        WHEN l.status = 'failed' AND l.permanent THEN 'failed'
        WHEN l.status = 'suppressed' THEN 'suppressed'`
	}
	capJoin, capSkip, capCount := "", "", "0"
	if q.Cap != nil {
		// Counted over the partial index email_log_cap_idx. The message's
		// own send, if it went out, is caught by the ledger join first.
		capJoin = `
LEFT JOIN LATERAL (
    SELECT count(*)::int AS n FROM email_log e
    WHERE e.customer_id = p.customer_id AND e.category = 'marketing' AND e.status = 'sent'
      AND e.sent_at > now() - ` + arg(q.Cap.Window.Microseconds()) + `::bigint * interval '1 microsecond'
) cap ON true`
		capSkip = "\n        WHEN cap.n >= " + arg(q.Cap.Max) + " THEN 'frequency_cap'"
		capCount = "cap.n"
	}

	query := `
SELECT p.customer_id, p.email, p.first_name, p.last_name, p.company, p.stage, p.score,
    p.lead_source, p.time_zone,
    CASE` + ledgerSkip + `
        WHEN sup.reason IS NOT NULL THEN 'suppressed'` + capSkip + `
        ELSE '' END,
    COALESCE(sup.reason, ''), ` + capCount + `
FROM (
    SELECT c.customer_id, c.email, c.first_name, c.last_name, c.company, c.stage, c.score,
        c.lead_source, c.time_zone
    FROM contacts c
    WHERE c.customer_id > $1 AND c.erased_at IS NULL AND c.consent AND c.email <> ''` + filters + `
    ORDER BY c.customer_id
    LIMIT $2
) p
LEFT JOIN suppressions sup
    ON sup.email_hash = encode(sha256(convert_to(lower(btrim(p.email)), 'UTF8')), 'hex')` + ledgerJoin + capJoin + `
ORDER BY p.customer_id`

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("segment page after %q: %w", q.After, err)
	}
	out := make([]Recipient, 0, q.Limit)
	for rows.Next() {
		var r Recipient
		var skip string
		if err := rows.Scan(&r.CustomerID, &r.Email, &r.FirstName, &r.LastName, &r.Company, &r.Stage,
			&r.Score, &r.LeadSource, &r.TimeZone, &skip, &r.SuppressionReason, &r.RecentMarketing); err != nil {
			rows.Close()
			return nil, fmt.Errorf("segment page after %q: %w", q.After, err)
		}
		r.Skip = Skip(skip)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("segment page after %q: %w", q.After, err)
	}
	return out, nil
}

// ClaimOutcome is ClaimSendBatch's answer for one send key.
type ClaimOutcome struct {
	Key    string
	Result ClaimResult
	// LeaseUntil is when the claim of another attempt runs out (for
	// ClaimInProgress: claim again after it), or when this claim does
	// (ClaimNew, ClaimRetry).
	LeaseUntil time.Time
}

// ClaimSendBatch claims many send keys in one transaction, with the same
// rules and answers as ClaimSend for each (see ClaimResult): new keys are
// inserted in one INSERT … ON CONFLICT DO NOTHING RETURNING, the rest are
// examined under SELECT … FOR UPDATE and updated in bulk. The suppression
// list is checked with HashEmail (computed here, in Go). Outcomes are in
// the order of claims. A key must not appear twice in one batch.
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
	out := make([]ClaimOutcome, n)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// New keys. Rows are inserted in key order, so two batches that
		// overlap take their locks in the same order.
		rows, err := tx.Query(ctx, `
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
        AS t(send_key, customer_id, email, template, category, message_id, email_hash, lease_us)
), decided AS (
    SELECT i.*, s.reason,
        s.reason IS NOT NULL AND (s.reason <> 'unsubscribed' OR i.category = 'marketing') AS blocked
    FROM input i LEFT JOIN suppressions s ON s.email_hash = i.email_hash
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
			keys, customers, emails, templates, categories, messageIDs, hashes, leases)
		if err != nil {
			return err
		}
		done := make([]bool, n)
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
WHERE l.send_key = t.send_key`, suppKeys, suppNotes); err != nil {
			return err
		}
	}
	if len(retryKeys) > 0 {
		rows, err := tx.Query(ctx, `
UPDATE email_log l SET status = 'claimed', attempts = l.attempts + 1, email = t.email, claimed_at = now(),
    lease_until = now() + t.lease_us * interval '1 microsecond', updated_at = now()
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(send_key, email, lease_us)
WHERE l.send_key = t.send_key
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
	tag, err := s.pool.Exec(ctx, `
UPDATE email_log l SET status = 'sent', sent_at = COALESCE(l.sent_at, t.at, now()), error = '',
    permanent = false, updated_at = now()
FROM unnest($1::text[], $2::timestamptz[]) AS t(send_key, at)
WHERE l.send_key = t.send_key`, keys, ats)
	if err != nil {
		return fmt.Errorf("mark %d sends sent: %w", len(sends), err)
	}
	if int(tag.RowsAffected()) == len(sends) {
		return nil
	}
	return s.missingKeys(ctx, "mark sent", keys)
}

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
