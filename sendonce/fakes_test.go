package sendonce_test

// In-memory stand-ins for the send ledger, the mailer and the metrics: the
// protocol's tests need no database and no SMTP server. memLedger answers
// claims by crm.ClaimResult's rules (crm's own tests check that the
// PostgreSQL ledger does); fakeMailer accepts like the SMTP pool, calling
// BeforeEnd before the server accepts.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/sendonce"
)

type ledgerRow struct {
	customerID, email string
	status            string // crm.SendClaimed, SendSent, SendFailed, SendSuppressed
	permanent         bool
	attempts          int
	leaseUntil        time.Time
}

type memLedger struct {
	mu   sync.Mutex
	rows map[string]*ledgerRow
	// suppressed holds reasons by lower-cased address.
	suppressed map[string]string
	// stageSeq is the journey stage counter the CRM holds per customer
	// (ClaimSend cancels marketing mail planned in an earlier stage).
	stageSeq map[string]int
	// deferUntil stands for the contact policy (crm's tests check the
	// real one): a new key of a marketing claim with a Policy for one of
	// these customers is deferred until the time given, by the gap.
	deferUntil map[string]time.Time

	// Faults: claimErr fails every claim; markErr every MarkSentBatch,
	// which takes markDelay.
	claimErr  error
	markErr   error
	markDelay time.Duration
}

func newLedger() *memLedger {
	return &memLedger{rows: map[string]*ledgerRow{}, suppressed: map[string]string{}, stageSeq: map[string]int{},
		deferUntil: map[string]time.Time{}}
}

func (l *memLedger) claim(c crm.SendClaim, checkStage bool) crm.ClaimOutcome {
	lease := c.Lease
	if lease == 0 {
		lease = crm.DefaultSendLease
	}
	reason := l.suppressed[strings.ToLower(strings.TrimSpace(c.Email))]
	blocked := reason != "" && (reason != crm.ReasonUnsubscribed || c.Category == crm.CategoryMarketing)
	cancelled := !blocked && checkStage && c.Category == crm.CategoryMarketing && c.StageSeq > 0 &&
		l.stageSeq[c.CustomerID] > c.StageSeq
	r, ok := l.rows[c.Key]
	if until, deferred := l.deferUntil[c.CustomerID]; !ok && deferred && !blocked && !cancelled &&
		c.Category == crm.CategoryMarketing && c.Policy != nil {
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimDeferred, DeferredUntil: until, DeferredBy: crm.SkipMinGap}
	}
	if !ok {
		r = &ledgerRow{customerID: c.CustomerID, email: c.Email, status: crm.SendClaimed, attempts: 1, leaseUntil: time.Now().Add(lease)}
		l.rows[c.Key] = r
		switch {
		case cancelled:
			r.status, r.attempts = crm.SendSuppressed, 0
			return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimCancelled}
		case blocked:
			r.status, r.attempts = crm.SendSuppressed, 0
			return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimSuppressed}
		}
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimNew, LeaseUntil: r.leaseUntil}
	}
	switch {
	case r.status == crm.SendSent:
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimAlreadySent}
	case r.status == crm.SendSuppressed:
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimSuppressed}
	case r.status == crm.SendFailed && r.permanent:
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimFailed}
	case r.status == crm.SendClaimed && r.leaseUntil.After(time.Now()):
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimInProgress, LeaseUntil: r.leaseUntil}
	case blocked || cancelled:
		r.status = crm.SendSuppressed
		if cancelled {
			return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimCancelled}
		}
		return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimSuppressed}
	}
	r.status, r.attempts, r.leaseUntil = crm.SendClaimed, r.attempts+1, time.Now().Add(lease)
	return crm.ClaimOutcome{Key: c.Key, Result: crm.ClaimRetry, LeaseUntil: r.leaseUntil}
}

func (l *memLedger) ClaimSendOutcome(_ context.Context, c crm.SendClaim) (crm.ClaimOutcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claimErr != nil {
		return crm.ClaimOutcome{}, l.claimErr
	}
	if r, ok := l.rows[c.Key]; ok && r.customerID != c.CustomerID {
		return crm.ClaimOutcome{}, fmt.Errorf("%w: send key belongs to customer %q", crm.ErrKeyConflict, r.customerID)
	}
	return l.claim(c, true), nil
}

// ClaimSend is ClaimSendOutcome's result, for the tests' own claims.
func (l *memLedger) ClaimSend(ctx context.Context, c crm.SendClaim) (crm.ClaimResult, error) {
	o, err := l.ClaimSendOutcome(ctx, c)
	return o.Result, err
}

func (l *memLedger) ClaimSendBatch(_ context.Context, claims []crm.SendClaim) ([]crm.ClaimOutcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claimErr != nil {
		return nil, l.claimErr
	}
	out := make([]crm.ClaimOutcome, len(claims))
	for i, c := range claims {
		out[i] = l.claim(c, false)
	}
	return out, nil
}

func (l *memLedger) MarkSent(_ context.Context, key string, _ time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rows[key]
	if !ok {
		return fmt.Errorf("mark sent %q: %w", key, crm.ErrNotFound)
	}
	r.status, r.permanent = crm.SendSent, false
	return nil
}

func (l *memLedger) MarkSentBatch(ctx context.Context, sends []crm.SentAt) error {
	time.Sleep(l.markDelay)
	if l.markErr != nil {
		return l.markErr
	}
	for _, s := range sends {
		if err := l.MarkSent(ctx, s.Key, s.At); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLedger) MarkFailed(_ context.Context, key, _ string, permanent bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rows[key]
	if !ok {
		return fmt.Errorf("mark failed %q: %w", key, crm.ErrNotFound)
	}
	if r.status == crm.SendClaimed || r.status == crm.SendFailed {
		r.permanent = (r.status == crm.SendFailed && r.permanent) || permanent
		r.status = crm.SendFailed
	}
	return nil
}

func (l *memLedger) MarkFailedBatch(ctx context.Context, keys []string, reason string, permanent bool) error {
	for _, k := range keys {
		if err := l.MarkFailed(ctx, k, reason, permanent); err != nil && !errors.Is(err, crm.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (l *memLedger) Suppress(_ context.Context, addr, _, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.suppressed[strings.ToLower(strings.TrimSpace(addr))] = reason
	return nil
}

// row returns a copy of a key's ledger row (zero when there is none).
func (l *memLedger) row(key string) ledgerRow {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.rows[key]; ok {
		return *r
	}
	return ledgerRow{}
}

// claimed counts the keys the ledger still holds as claimed.
func (l *memLedger) claimed(keys []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range keys {
		if r, ok := l.rows[k]; ok && r.status == crm.SendClaimed {
			n++
		}
	}
	return n
}

// fakeMailer accepts every message that fail (optional) lets through,
// calling BeforeEnd first as the SMTP pool does before the end of the
// data; accepted (optional) runs as the server accepts.
type fakeMailer struct {
	mu       sync.Mutex
	sent     []email.Message
	fail     func(to string) error
	accepted func(m email.Message)
}

func (m *fakeMailer) Send(_ context.Context, msg email.Message) error {
	if m.fail != nil {
		if err := m.fail(msg.To); err != nil {
			return err
		}
	}
	if msg.BeforeEnd != nil {
		if err := msg.BeforeEnd(); err != nil {
			return err
		}
	}
	if m.accepted != nil {
		m.accepted(msg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

// to lists the recipients of the accepted messages, sorted.
func (m *fakeMailer) to() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, msg := range m.sent {
		out = append(out, msg.To)
	}
	slices.Sort(out)
	return out
}

// counter counts outcomes like lifecycle_emails_total.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Email(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[outcome]++
}

func (c *counter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// letter is the email of a journey step or a broadcast to customer id.
func letter(id, category string) sendonce.Letter {
	key := id + "/news"
	addr := id + "@example.test"
	return sendonce.Letter{
		Claim: crm.SendClaim{Key: key, CustomerID: id, Email: addr, Template: "news", Category: category,
			MessageID: email.MessageIDFor(key, "news@example.test")},
		Message: email.Message{MessageID: email.MessageIDFor(key, "news@example.test"), To: addr,
			Subject: "News", Text: "Hello", Category: category},
	}
}

// recipients are c00..c<n-1> at cNN@example.test, in key order.
func recipients(n int) []crm.Recipient {
	out := make([]crm.Recipient, n)
	for i := range out {
		id := fmt.Sprintf("c%02d", i)
		out[i] = crm.Recipient{CustomerID: id, Email: id + "@example.test"}
	}
	return out
}

func batchLetter(rc crm.Recipient) (sendonce.Letter, error) {
	return letter(rc.CustomerID, crm.CategoryMarketing), nil
}

// requireOnceEach requires that the mailer accepted one message per
// address.
func requireOnceEach(t *testing.T, m *fakeMailer, n int) {
	t.Helper()
	got := m.to()
	require.Len(t, got, n)
	require.Equal(t, len(got), len(slices.Compact(slices.Clone(got))), "an address got two messages: %v", got)
}
