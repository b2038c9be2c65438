package crm

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The contact policy at claim time. A journey times its own marketing mail
// (campaign.Sending.Schedule) but cannot see a broadcast, nor a broadcast
// the journey's next email; the ledger sees every source, so it checks the
// cap and the gap again when a new marketing send key is claimed.

// ContactPolicy is the part of the contact policy the ledger enforces when
// a marketing email is claimed (SendClaim.Policy): the least time between
// two marketing emails to one customer and the frequency cap, over every
// marketing email the ledger holds for the customer, whatever sent it.
// Quiet hours are not in it: they depend on the recipient's zone and are
// applied where the email is timed.
type ContactPolicy struct {
	MinGap    time.Duration // 0: none
	CapMax    int           // 0: no cap
	CapWindow time.Duration
}

// active reports whether the policy has a rule to check.
func (p *ContactPolicy) active() bool { return p != nil && (p.MinGap > 0 || p.CapMax > 0) }

func (p *ContactPolicy) validate() error {
	if p == nil {
		return nil
	}
	if p.MinGap < 0 {
		return invalid("policy.min_gap", "%v is negative", p.MinGap)
	}
	if p.CapMax < 0 {
		return invalid("policy.cap_max", "%d is negative", p.CapMax)
	}
	if p.CapWindow < 0 || (p.CapMax > 0 && p.CapWindow == 0) {
		return invalid("policy.cap_window", "%v is not positive", p.CapWindow)
	}
	return nil
}

// lookback is how far back a send can matter to the policy.
func (p ContactPolicy) lookback() time.Duration {
	d := p.MinGap
	if p.CapMax > 0 {
		d = max(d, p.CapWindow)
	}
	return d
}

// Decide applies the policy to a marketing email that would go out at now,
// given the times of the customer's other marketing emails (any order; sent,
// or claimed and in flight). It returns the zero time when the email may go
// now. Otherwise it returns the earliest time both rules allow (absent new
// sends) and the rule that set it, SkipMinGap or SkipFrequencyCap:
//
//   - the minimum gap: a send later than now − MinGap defers the email
//     until the latest such send + MinGap;
//   - the cap: CapMax or more sends later than now − CapWindow defer it
//     until enough of them left the window (with exactly CapMax, the oldest
//   - CapWindow).
//
// A send stamped after now (a sender's clock a little ahead of the
// database's) counts as within both windows.
func (p ContactPolicy) Decide(now time.Time, recent []time.Time) (until time.Time, rule Skip) {
	if p.MinGap > 0 {
		for _, t := range recent {
			if t.After(now.Add(-p.MinGap)) && t.Add(p.MinGap).After(until) {
				until, rule = t.Add(p.MinGap), SkipMinGap
			}
		}
	}
	if p.CapMax > 0 && p.CapWindow > 0 {
		var in []time.Time
		for _, t := range recent {
			if t.After(now.Add(-p.CapWindow)) {
				in = append(in, t)
			}
		}
		if len(in) >= p.CapMax {
			slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
			// At in[k] + window, k+1 of them have left: fewer than CapMax remain.
			if at := in[len(in)-p.CapMax].Add(p.CapWindow); at.After(until) {
				until, rule = at, SkipFrequencyCap
			}
		}
	}
	return until, rule
}

// policyLockSpace is the first key of the per-customer advisory locks
// ("lcpp"), so they cannot meet another user's single-key locks.
const policyLockSpace int32 = 0x6c637070

// The per-customer lock. Two claims for one customer must not both pass the
// gap check: each reads the customer's sends, sees none in flight, and
// sends. The claims are serialised per customer with a transaction-scoped
// advisory lock on hashtext(customer_id), taken before anything else of
// the claim, rather than with contacts … FOR UPDATE, because:
//
//   - the ledger does not need a contact row (a claim for a customer id
//     without one would lock nothing);
//   - the claim already holds the contact row FOR SHARE (customerNow), and
//     two claims upgrading their share locks would deadlock; taking FOR
//     UPDATE instead would also queue transactional mail and contact
//     writes behind marketing claims;
//   - it is released at commit, once the winner's "claimed" row is visible
//     to the next claim, which counts it as a send in flight.
//
// A hash collision only makes two customers' claims wait for each other
// briefly. Batches take their locks ordered by the hash, so two batches
// cannot deadlock on them.
const lockCustomers = `
SELECT count(pg_advisory_xact_lock($1::int, h))
FROM (SELECT DISTINCT hashtext(c) AS h FROM unnest($2::text[]) AS c ORDER BY h) AS t`

func lockForPolicy(ctx context.Context, tx pgx.Tx, customerIDs []string) error {
	_, err := tx.Exec(ctx, lockCustomers, policyLockSpace, customerIDs)
	return err
}

// recentMarketing is, per claim, what the policy check reads under the
// customer's lock (one statement for a whole batch): the database's clock,
// whether the send key is in the ledger already (then the policy is not
// checked: the key keeps its answers), whether the address is suppressed
// (then the claim records that instead), and the times of the customer's
// marketing sends that can matter: those sent within the lookback
// (email_log_cap_idx), and the claims in flight — a claim whose lease is
// running, at its claimed_at — so that two claims in a row do not both
// send. A claim whose lease ran out is not counted: it was abandoned, and
// its retry is a key the ledger already holds.
//
// The key and address lookups are scalar subqueries with LIMIT 1, not
// EXISTS: PostgreSQL may run an EXISTS as a "hashed SubPlan" that reads
// the whole ledger (or suppression list) once per statement, which a
// broadcast repeats per chunk; LIMIT 1 keeps them primary-key probes
// (TestBroadcastStatementsProbeTheLedgerByKey).
const recentMarketing = `
SELECT t.send_key, now(),
    (SELECT true FROM email_log x WHERE x.send_key = t.send_key LIMIT 1) IS NOT NULL,
    (SELECT true FROM suppressions s WHERE s.email_hash = t.email_hash LIMIT 1) IS NOT NULL,
    ARRAY(
        SELECT e.sent_at FROM email_log e
        WHERE e.customer_id = t.customer_id AND e.category = 'marketing' AND e.status = 'sent'
          AND e.sent_at > now() - t.lookback_us * interval '1 microsecond'
        UNION ALL
        SELECT e.claimed_at FROM email_log e
        WHERE e.customer_id = t.customer_id AND e.category = 'marketing' AND e.status = 'claimed'
          AND e.lease_until > now()
    )
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(send_key, customer_id, email_hash, lookback_us)`

// policyCheck is one claim to check against its policy.
type policyCheck struct {
	key, customerID, emailHash string
	policy                     ContactPolicy
}

// deferClaims checks claims (marketing, with an active policy) whose
// customers the caller has locked (lockForPolicy) and returns the
// outcomes of those the policy defers, by send key. Keys the ledger holds
// and suppressed addresses are not deferred. Claims of one customer in the
// same call see each other: one that passes counts as a send in flight for
// the next.
func deferClaims(ctx context.Context, tx pgx.Tx, checks []policyCheck) (map[string]ClaimOutcome, error) {
	n := len(checks)
	keys, customers, hashes := make([]string, n), make([]string, n), make([]string, n)
	lookbacks := make([]int64, n)
	byKey := make(map[string]policyCheck, n)
	for i, c := range checks {
		keys[i], customers[i], hashes[i] = c.key, c.customerID, c.emailHash
		lookbacks[i] = c.policy.lookback().Microseconds()
		byKey[c.key] = c
	}
	rows, err := tx.Query(ctx, recentMarketing, keys, customers, hashes, lookbacks)
	if err != nil {
		return nil, err
	}
	type read struct {
		key                string
		now                time.Time
		exists, suppressed bool
		recent             []time.Time
	}
	var reads []read
	for rows.Next() {
		var r read
		if err := rows.Scan(&r.key, &r.now, &r.exists, &r.suppressed, &r.recent); err != nil {
			rows.Close()
			return nil, err
		}
		reads = append(reads, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	deferred := map[string]ClaimOutcome{}
	passed := map[string][]time.Time{} // by customer: claims of this call that may send
	for _, r := range reads {
		c := byKey[r.key]
		if r.exists || r.suppressed {
			continue
		}
		until, rule := c.policy.Decide(r.now, append(r.recent, passed[c.customerID]...))
		if until.IsZero() {
			passed[c.customerID] = append(passed[c.customerID], r.now)
			continue
		}
		deferred[r.key] = ClaimOutcome{Key: r.key, Result: ClaimDeferred, DeferredUntil: until, DeferredBy: rule}
	}
	return deferred, nil
}
