package crm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
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
	// Tags: the contact has every one of these tags (customer.CheckTags;
	// contacts_tags_gin finds them).
	Tags []string
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
	if err := customer.CheckTags("segment.tags", g.Tags); err != nil {
		return rule(err)
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
	// MinGap flags contacts that were sent a marketing email (any source)
	// within MinGap before now (SkipMinGap). 0: no gap. The claim checks it
	// again with the sends in flight (SendClaim.Policy).
	MinGap time.Duration
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
	// SkipMinGap: the contact got a marketing email within MinGap.
	SkipMinGap Skip = "min_gap"
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
	if q.MinGap < 0 {
		return invalid("min_gap", "%v is negative", q.MinGap)
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
//     window, and the minimum gap looks for one within the gap (both on
//     email_log_cap_idx).
//
// Flagged contacts are returned with Skip set, so the caller can count them.
func (s *Store) SegmentPage(ctx context.Context, q SegmentQuery) ([]Recipient, error) {
	if err := q.validate(); err != nil {
		return nil, fmt.Errorf("segment page: %w", err)
	}
	query, args := segmentPageQuery(q)
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

// segmentPageQuery builds SegmentPage's statement and the arguments of
// pool.Query for a validated q. Every value is a bind parameter; only the
// shape (which filters and joins) depends on q. TestTagSegmentUsesTheIndex
// runs EXPLAIN on exactly what it returns.
func segmentPageQuery(q SegmentQuery) (string, []any) {
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
	if len(q.Segment.Tags) > 0 {
		// Containment of all the tags: contacts_tags_gin answers it.
		where = append(where, "c.tags @> "+arg(q.Segment.Tags)+"::text[]")
	}
	filters := ""
	for _, w := range where {
		filters += "\n      AND " + w
	}

	ledgerJoin, ledgerSkip := "", ""
	if q.SendKeySuffix != "" {
		// A probe per contact by primary key, not a join: the planner
		// hashes the whole ledger for a join once it thinks that cheaper
		// than a page of probes, and the ledger grows with every send.
		ledgerJoin = `
LEFT JOIN LATERAL (
    SELECT x.status, x.permanent FROM email_log x WHERE x.send_key = p.customer_id || ` + arg(q.SendKeySuffix) + `
    LIMIT 1
) l ON true`
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
	gapJoin, gapSkip := "", ""
	if q.MinGap > 0 {
		// An index-only probe of email_log_cap_idx, like the cap's.
		gapJoin = `
LEFT JOIN LATERAL (
    SELECT true AS hit FROM email_log g
    WHERE g.customer_id = p.customer_id AND g.category = 'marketing' AND g.status = 'sent'
      AND g.sent_at > now() - ` + arg(q.MinGap.Microseconds()) + `::bigint * interval '1 microsecond'
    LIMIT 1
) gap ON true`
		gapSkip = "\n        WHEN gap.hit THEN 'min_gap'"
	}

	query := `
SELECT p.customer_id, p.email, p.first_name, p.last_name, p.company, p.stage, p.score,
    p.lead_source, p.time_zone,
    CASE` + ledgerSkip + `
        WHEN sup.reason IS NOT NULL THEN 'suppressed'` + capSkip + gapSkip + `
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
LEFT JOIN LATERAL (
    SELECT x.reason FROM suppressions x
    WHERE x.email_hash = encode(sha256(convert_to(lower(btrim(p.email)), 'UTF8')), 'hex')
    LIMIT 1
) sup ON true` + ledgerJoin + capJoin + gapJoin + `
ORDER BY p.customer_id`

	if len(q.Segment.Tags) > 0 {
		// A tag may be on most contacts or on a handful, and only a plan
		// made for the value knows which: walk the audience in key order
		// and filter (a common tag) or read the few from contacts_tags_gin
		// and sort them (a rare one). pgx's default mode prepares and
		// caches the statement per connection, and after five executions
		// PostgreSQL switches to a generic plan when that looks no dearer
		// than the custom plans so far — one that cannot see the value and
		// walks the whole audience even for a rare tag. An unnamed
		// statement (still one round trip) is planned for its values
		// every time.
		args = append([]any{pgx.QueryExecModeCacheDescribe}, args...)
	}
	return query, args
}
