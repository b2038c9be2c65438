package crm_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

func claim(key string) crm.SendClaim {
	return crm.SendClaim{
		Key: key, CustomerID: "cus_1", Email: "ada@example.com", Template: "welcome",
		Category: crm.CategoryMarketing, MessageID: "<" + key + "@lifecycle.test>",
	}
}

func requireClaim(t *testing.T, s *crm.Store, c crm.SendClaim, want crm.ClaimResult) {
	t.Helper()
	got, err := s.ClaimSend(t.Context(), c)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestClaimSendNewThenSent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	c := claim("cus_1/welcome@3/day-0")

	requireClaim(t, s, c, crm.ClaimNew)
	require.True(t, crm.ClaimNew.MaySend())
	// A second attempt while the first holds the lease must not send.
	requireClaim(t, s, c, crm.ClaimInProgress)
	require.False(t, crm.ClaimInProgress.MaySend())

	sentAt := time.Date(2025, 3, 1, 9, 0, 1, 0, time.UTC)
	require.NoError(t, s.MarkSent(ctx, c.Key, sentAt))
	requireClaim(t, s, c, crm.ClaimAlreadySent)
	require.False(t, crm.ClaimAlreadySent.MaySend())

	// Marking again keeps the first time; late failure reports do not
	// change a sent email.
	require.NoError(t, s.MarkSent(ctx, c.Key, sentAt.Add(time.Hour)))
	require.NoError(t, s.MarkFailed(ctx, c.Key, "smtp timeout", false))
	require.NoError(t, s.MarkSuppressed(ctx, c.Key, "unsubscribed"))
	got, err := s.GetSend(ctx, c.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSent, got.Status)
	require.True(t, got.SentAt.Equal(sentAt))
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, c.MessageID, got.MessageID)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM email_log`))
}

func TestClaimSendRetryAfterAbandonedClaim(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	c := claim("cus_1/welcome@3/day-3")
	c.Lease = time.Millisecond // the worker "dies" and its lease runs out

	requireClaim(t, s, c, crm.ClaimNew)
	time.Sleep(20 * time.Millisecond)
	retry := c
	retry.MessageID = "<a-different-id@lifecycle.test>"
	retry.Lease = time.Minute
	requireClaim(t, s, retry, crm.ClaimRetry)
	require.True(t, crm.ClaimRetry.MaySend())
	got, err := s.GetSend(ctx, c.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendClaimed, got.Status)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, c.MessageID, got.MessageID, "the ledger keeps the first Message-ID")

	// The retry holds a fresh lease.
	requireClaim(t, s, retry, crm.ClaimInProgress)
	require.NoError(t, s.MarkSent(ctx, c.Key, time.Time{}))
	requireClaim(t, s, retry, crm.ClaimAlreadySent)
}

func TestClaimSendFailures(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	c := claim("cus_1/nurture@1/step-2")

	requireClaim(t, s, c, crm.ClaimNew)
	require.NoError(t, s.MarkFailed(ctx, c.Key, "dial tcp: connection refused", false))
	// A transient failure may be retried at once.
	requireClaim(t, s, c, crm.ClaimRetry)
	require.NoError(t, s.MarkFailed(ctx, c.Key, "550 mailbox unavailable", true))
	requireClaim(t, s, c, crm.ClaimFailed)
	require.False(t, crm.ClaimFailed.MaySend())
	// A late transient report does not downgrade a permanent failure.
	require.NoError(t, s.MarkFailed(ctx, c.Key, "timeout", false))
	requireClaim(t, s, c, crm.ClaimFailed)
	got, err := s.GetSend(ctx, c.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendFailed, got.Status)
	require.True(t, got.Permanent)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, "timeout", got.Error)

	require.ErrorIs(t, s.MarkSent(ctx, "nope", time.Now()), crm.ErrNotFound)
	require.ErrorIs(t, s.MarkFailed(ctx, "nope", "x", true), crm.ErrNotFound)
	require.ErrorIs(t, s.MarkSuppressed(ctx, "nope", "x"), crm.ErrNotFound)
	requireInvalid(t, s.MarkFailed(ctx, c.Key, "", true), "reason")
	requireInvalid(t, s.MarkSent(ctx, "", time.Now()), "send_key")
}

func TestClaimSendSuppressed(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	// Unsubscribed: marketing stops, transactional mail still goes.
	require.NoError(t, s.Suppress(ctx, "Ada@Example.com", "cus_1", crm.ReasonUnsubscribed))
	requireClaim(t, s, claim("cus_1/m/1"), crm.ClaimSuppressed)
	requireClaim(t, s, claim("cus_1/m/1"), crm.ClaimSuppressed)
	got, err := s.GetSend(ctx, "cus_1/m/1")
	require.NoError(t, err)
	require.Equal(t, crm.SendSuppressed, got.Status)
	require.Equal(t, 0, got.Attempts)
	tr := claim("cus_1/receipt/1")
	tr.Category = crm.CategoryTransactional
	requireClaim(t, s, tr, crm.ClaimNew)

	// Bounced: nothing goes, even a retry of a claim made before.
	tr.Lease = time.Millisecond
	tr.Key = "cus_1/receipt/2"
	requireClaim(t, s, tr, crm.ClaimNew)
	require.NoError(t, s.Suppress(ctx, "ada@example.com", "cus_1", crm.ReasonBounced))
	time.Sleep(20 * time.Millisecond)
	requireClaim(t, s, tr, crm.ClaimSuppressed)
	tr.Key = "cus_1/receipt/3"
	requireClaim(t, s, tr, crm.ClaimSuppressed)

	// MarkSuppressed: the caller found out itself.
	c := claim("cus_1/m/2")
	c.Email = "other@example.com"
	requireClaim(t, s, c, crm.ClaimNew)
	require.NoError(t, s.MarkSuppressed(ctx, c.Key, "consent withdrawn"))
	requireClaim(t, s, c, crm.ClaimSuppressed)
}

func TestClaimSendConcurrentClaimsOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()

	race := func(c crm.SendClaim) map[crm.ClaimResult]int {
		const n = 20
		results := make([]crm.ClaimResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.ClaimSend(ctx, c)
			})
		}
		close(start)
		wg.Wait()
		counts := map[crm.ClaimResult]int{}
		for i := range n {
			require.NoError(t, errs[i])
			counts[results[i]]++
		}
		return counts
	}

	c := claim("cus_1/welcome@3/day-7")
	c.Lease = time.Minute // longer than any race, however loaded the machine
	counts := race(c)
	require.Equal(t, 1, counts[crm.ClaimNew], "%v", counts)
	require.Equal(t, 19, counts[crm.ClaimInProgress], "%v", counts)

	// Once the lease ran out (expired here in the database rather than by
	// sleeping, which a loaded machine can stretch past the race), exactly
	// one of the racing retries may send.
	_, err := s.Pool().Exec(ctx, `UPDATE email_log SET lease_until = now() - interval '1 second' WHERE send_key = $1`, c.Key)
	require.NoError(t, err)
	counts = race(c)
	require.Equal(t, 1, counts[crm.ClaimRetry], "%v", counts)
	require.Equal(t, 19, counts[crm.ClaimInProgress], "%v", counts)

	got, err := s.GetSend(ctx, c.Key)
	require.NoError(t, err)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM email_log`))
}

func TestClaimSendRejectsGarbage(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	cases := map[string]func(*crm.SendClaim){
		"send_key":    func(c *crm.SendClaim) { c.Key = "" },
		"customer_id": func(c *crm.SendClaim) { c.CustomerID = "" },
		"email":       func(c *crm.SendClaim) { c.Email = "ada(at)example.com" },
		"template":    func(c *crm.SendClaim) { c.Template = "" },
		"category":    func(c *crm.SendClaim) { c.Category = "newsletter" },
		"message_id":  func(c *crm.SendClaim) { c.MessageID = "" },
		"lease":       func(c *crm.SendClaim) { c.Lease = -time.Second },
	}
	for field, mutate := range cases {
		c := claim("k")
		mutate(&c)
		_, err := s.ClaimSend(t.Context(), c)
		requireInvalid(t, err, field)
	}
	// A key reused for another customer is a bug in the caller.
	requireClaim(t, s, claim("k"), crm.ClaimNew)
	other := claim("k")
	other.CustomerID = "cus_2"
	_, err := s.ClaimSend(t.Context(), other)
	require.ErrorIs(t, err, crm.ErrKeyConflict)
}

// The claim checks, in its transaction, that the customer may still be
// mailed: a marketing email planned in a stage the journey has left (a
// purchase while it waited or retried) is cancelled; nothing is sent about
// an erased customer, not even an owner's notice.
func TestClaimSendChecksTheCustomerNow(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	require.NoError(t, s.RecordTransition(ctx, crm.Transition{Key: "cus_1/j1/transition/1", CustomerID: "cus_1",
		To: crm.StageNurture, Journey: "j1", StageSeq: 1}))

	nurture := claim("cus_1/j1/nurture#1/n1")
	nurture.Journey, nurture.StageSeq = "j1", 1
	requireClaim(t, s, nurture, crm.ClaimNew)
	require.NoError(t, s.MarkFailed(ctx, nurture.Key, "smtp down", false))

	// The customer buys while the send retries.
	require.NoError(t, s.RecordTransition(ctx, crm.Transition{Key: "cus_1/j1/transition/2", CustomerID: "cus_1",
		From: crm.StageNurture, To: crm.StageOnboarding, Journey: "j1", StageSeq: 2}))
	requireClaim(t, s, nurture, crm.ClaimCancelled)
	require.False(t, crm.ClaimCancelled.MaySend())
	requireClaim(t, s, nurture, crm.ClaimSuppressed) // a retry of the cancelled send
	got, err := s.GetSend(ctx, nurture.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSuppressed, got.Status)
	require.Contains(t, got.Error, "cancelled")

	// Never claimed before: cancelled at once.
	late := claim("cus_1/j1/nurture#1/n2")
	late.Journey, late.StageSeq = "j1", 1
	requireClaim(t, s, late, crm.ClaimCancelled)

	// Mail of the current stage goes; so does transactional mail of an
	// earlier stage (an owner's notice), and mail of another journey.
	onboarding := claim("cus_1/j1/onboarding#2/day0")
	onboarding.Journey, onboarding.StageSeq = "j1", 2
	requireClaim(t, s, onboarding, crm.ClaimNew)
	notice := claim("cus_1/j1/sales#1/handoff")
	notice.Journey, notice.StageSeq, notice.Category, notice.Email = "j1", 1, crm.CategoryTransactional, "owner@example.com"
	requireClaim(t, s, notice, crm.ClaimNew)
	other := claim("cus_1/j0/nurture#1/n1")
	other.Journey, other.StageSeq = "j0", 1
	requireClaim(t, s, other, crm.ClaimNew)

	// Erased: nothing about the customer goes out.
	require.NoError(t, s.Erase(ctx, "cus_1"))
	ownerNotice := claim("cus_1/j1/onboarding#2/owner")
	ownerNotice.Category, ownerNotice.Email = crm.CategoryTransactional, "owner@example.com"
	requireClaim(t, s, ownerNotice, crm.ClaimSuppressed)
}
