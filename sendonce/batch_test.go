package sendonce_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/sendonce"
)

type batchFixture struct {
	ledger  *memLedger
	mail    *fakeMailer
	metrics *counter
	sender  *sendonce.Sender

	mu   sync.Mutex
	done []string // the cursors Done heard of, in order
	sum  sendonce.Counts
}

func newBatch(concurrency int) *batchFixture {
	f := &batchFixture{ledger: newLedger(), mail: &fakeMailer{}, metrics: &counter{}}
	f.sender = sendonce.New(f.ledger, f.mail, concurrency, f.metrics)
	return f
}

func (f *batchFixture) batch(rows []crm.Recipient) sendonce.Batch {
	return sendonce.Batch{Recipients: rows, Letter: batchLetter, Lease: time.Minute, Done: f.advance}
}

func (f *batchFixture) advance(cursor string, c sendonce.Counts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, cursor)
	f.sum.Add(c)
}

func (f *batchFixture) position() (string, sendonce.Counts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.done) == 0 {
		return "", f.sum
	}
	return f.done[len(f.done)-1], f.sum
}

func TestSendBatchSendsOncePerKeyAndCountsEveryRecipient(t *testing.T) {
	f := newBatch(3)
	rows := recipients(12)
	rows[1].Skip = crm.SkipAlreadySent
	rows[2].Skip = crm.SkipFailed
	rows[3].Skip = crm.SkipSuppressed
	rows[4].Skip = crm.SkipFrequencyCap
	rows[5].Email = "not an address"
	// Suppressed after the audience query: the claim catches it.
	require.NoError(t, f.ledger.Suppress(t.Context(), rows[6].Email, "c06", crm.ReasonComplained))

	require.NoError(t, f.sender.SendBatch(t.Context(), f.batch(rows)))
	cursor, sum := f.position()
	require.Equal(t, "c11", cursor)
	require.Equal(t, sendonce.Counts{Sent: 6, Duplicate: 1, Suppressed: 2, Failed: 2, Deferred: 1}, sum)
	require.Equal(t, 12, sum.Recipients(), "every recipient counted once")
	sent := []string{"c00", "c07", "c08", "c09", "c10", "c11"}
	var addrs []string
	for _, id := range sent {
		addrs = append(addrs, id+"@example.test")
		require.Equal(t, crm.SendSent, f.ledger.row(id+"/news").status, id)
	}
	require.Equal(t, addrs, f.mail.to())
	require.Equal(t, map[string]int{"sent": 6, "duplicate": 1, "suppressed": 2, "failed": 1}, f.metrics.counts(),
		"a failure recorded earlier was counted when it happened; deferrals are not emails")

	// The same batch again, without the query's flags: the ledger answers.
	f2 := &batchFixture{ledger: f.ledger, mail: &fakeMailer{}, metrics: &counter{}}
	f2.sender = sendonce.New(f.ledger, f2.mail, 3, f2.metrics)
	require.NoError(t, f2.sender.SendBatch(t.Context(), f2.batch(recipients(12)[7:])))
	_, sum = f2.position()
	require.Equal(t, sendonce.Counts{Duplicate: 5}, sum)
	require.Empty(t, f2.mail.sent)
}

func TestSendBatchDefersRecipientsInQuietHours(t *testing.T) {
	f := newBatch(2)
	// Quiet from this hour for two hours in UTC, the default zone.
	h := time.Now().UTC().Hour()
	quiet := &campaign.QuietHours{Start: campaign.ClockTime{Hour: h}, End: campaign.ClockTime{Hour: (h + 2) % 24}}
	rows := recipients(3)
	rows[0].TimeZone = "Etc/GMT-12" // UTC+12: outside the window
	rows[1].TimeZone = ""           // the default zone: inside
	rows[2].TimeZone = "Mars/Olympus_Mons"
	b := f.batch(rows)
	b.QuietHours, b.DefaultZone = quiet, time.UTC

	require.NoError(t, f.sender.SendBatch(t.Context(), b))
	_, sum := f.position()
	require.Equal(t, sendonce.Counts{Sent: 1, Deferred: 2}, sum, "an unknown zone falls back to the default")
	require.Equal(t, []string{"c00@example.test"}, f.mail.to())
	require.Equal(t, ledgerRow{}, f.ledger.row("c01/news"), "a deferred recipient leaves no ledger row")
}

func TestSendBatchRecordsAPermanentRefusalAndGoesOn(t *testing.T) {
	f := newBatch(2)
	f.mail.fail = func(to string) error {
		switch to {
		case "c02@example.test":
			return &email.PermanentError{Code: 552, Err: errors.New("552 message too large")}
		case "c04@example.test":
			return &email.PermanentError{Code: 550, EnhancedCode: "5.1.1", Recipient: true, Err: errors.New("550 5.1.1 user unknown")}
		}
		return nil
	}
	require.NoError(t, f.sender.SendBatch(t.Context(), f.batch(recipients(6))))
	_, sum := f.position()
	require.Equal(t, sendonce.Counts{Sent: 4, Failed: 2}, sum)
	require.True(t, f.ledger.row("c02/news").permanent)
	require.Equal(t, crm.ReasonBounced, f.ledger.suppressed["c04@example.test"], "a hard bounce suppresses the address")
	require.Equal(t, map[string]int{"sent": 4, "failed": 1, "bounced": 1}, f.metrics.counts())
}

func TestSendBatchStopsAtATransientFailureAndTheRetryReachesEverybodyOnce(t *testing.T) {
	f := newBatch(1) // in order
	var mu sync.Mutex
	down := true
	f.mail.fail = func(to string) error {
		mu.Lock()
		defer mu.Unlock()
		if down && to == "c07@example.test" {
			return errors.New("dial tcp 127.0.0.1:25: connection refused")
		}
		return nil
	}
	rows := recipients(40)
	err := f.sender.SendBatch(t.Context(), f.batch(rows))
	require.Error(t, err)
	require.NotErrorIs(t, err, sendonce.ErrRefused)
	first := f.mail.to()
	require.Subset(t, first, []string{"c04@example.test", "c05@example.test", "c06@example.test"}, "tried before c07, in order")
	require.Less(t, len(first), 40, "sending stops at the failure")
	cursor, sum := f.position()
	require.Less(t, cursor, "c07", "the chunk that failed is not reported")
	for _, rc := range after(rows, "")[:len(rows)-len(after(rows, cursor))] {
		require.Contains(t, first, rc.Email, "position %q is past %s, which was not sent", cursor, rc.CustomerID)
	}
	require.Equal(t, sendonce.Counts{Sent: len(after(rows, "")) - len(after(rows, cursor))}, sum)
	for _, key := range []string{"c07/news", "c08/news"} {
		row := f.ledger.row(key)
		require.Equal(t, crm.SendFailed, row.status, "%s: recorded or released, so the retry takes it over at once", key)
		require.False(t, row.permanent, key)
	}
	require.Equal(t, map[string]int{"sent": len(first), "retry": 1}, f.metrics.counts())

	// The retry resumes after the reported position.
	mu.Lock()
	down = false
	mu.Unlock()
	retry := newBatch(1)
	retry.sender = sendonce.New(f.ledger, f.mail, 1, retry.metrics)
	require.NoError(t, retry.sender.SendBatch(t.Context(), retry.batch(after(rows, cursor))))
	_, again := retry.position()
	require.Equal(t, 40-sum.Sent, again.Recipients())
	require.Equal(t, 40-len(first), again.Sent)
	requireOnceEach(t, f.mail, 40)
	require.Equal(t, 2, f.ledger.row("c07/news").attempts)
}

// after returns the recipients after cursor.
func after(rows []crm.Recipient, cursor string) []crm.Recipient {
	var out []crm.Recipient
	for _, rc := range rows {
		if rc.CustomerID > cursor {
			out = append(out, rc)
		}
	}
	return out
}

func TestSendBatchFailureInOneChunkDoesNotReportTheChunkBefore(t *testing.T) {
	f := newBatch(1)
	var mu sync.Mutex
	down := true
	f.mail.fail = func(to string) error {
		mu.Lock()
		failing := down
		mu.Unlock()
		switch {
		case !failing:
			return nil
		case to < "c04": // the first chunk (4 recipients) is slow
			time.Sleep(40 * time.Millisecond)
		case to == "c05@example.test": // the second chunk fails early
			return errors.New("421 4.3.2 service not available")
		}
		return nil
	}
	rows := recipients(40)
	require.Error(t, f.sender.SendBatch(t.Context(), f.batch(rows)))
	cursor, _ := f.position()
	first := f.mail.to()
	for _, rc := range rows {
		if rc.CustomerID <= cursor {
			require.Contains(t, first, rc.Email, "position %q is past %s, which was not sent", cursor, rc.CustomerID)
		}
	}

	mu.Lock()
	down = false
	mu.Unlock()
	retry := newBatch(1)
	retry.sender = sendonce.New(f.ledger, f.mail, 1, retry.metrics)
	require.NoError(t, retry.sender.SendBatch(t.Context(), retry.batch(after(rows, cursor))))
	requireOnceEach(t, f.mail, 40)
}

func TestSendBatchWaitsForTheClaimsOfADeadAttempt(t *testing.T) {
	f := newBatch(2)
	dead := letter("c01", crm.CategoryMarketing)
	dead.Claim.Lease = 300 * time.Millisecond
	_, err := f.ledger.ClaimSend(t.Context(), dead.Claim)
	require.NoError(t, err)

	require.NoError(t, f.sender.SendBatch(t.Context(), f.batch(recipients(3))))
	_, sum := f.position()
	require.Equal(t, sendonce.Counts{Sent: 3}, sum)
	requireOnceEach(t, f.mail, 3)
	require.Equal(t, 2, f.ledger.row("c01/news").attempts, "taken over after the lease")
}

func TestSendBatchStopsWhenTheLedgerCannotRecordASend(t *testing.T) {
	f := newBatch(2)
	f.ledger.markErr = errors.New("database is gone")
	err := f.sender.SendBatch(t.Context(), f.batch(recipients(50)))
	require.ErrorContains(t, err, "database is gone")
	require.Less(t, len(f.mail.sent), 50, "a send that cannot be recorded stops the sending")
	cursor, _ := f.position()
	require.Empty(t, cursor, "nothing is reported done")
}

func TestSendBatchRefusesWhatALetterCannotBe(t *testing.T) {
	f := newBatch(2)
	bad := errors.New("template does not render")
	b := f.batch(recipients(3))
	b.Letter = func(rc crm.Recipient) (sendonce.Letter, error) {
		if rc.CustomerID == "c01" {
			return sendonce.Letter{}, bad
		}
		return batchLetter(rc)
	}
	require.ErrorIs(t, f.sender.SendBatch(t.Context(), b), bad)
	require.Empty(t, f.mail.sent)

	f.ledger.claimErr = &crm.ValidationError{Field: "send_key", Problem: "is empty"}
	require.ErrorIs(t, f.sender.SendBatch(t.Context(), f.batch(recipients(3))), sendonce.ErrRefused)
}

// When the server accepts a message, at most Concurrency-1 others have
// been accepted and not yet recorded as sent — across every batch of the
// Sender — so a crash leaves at most Concurrency messages in doubt, one per
// SMTP connection.
func TestSendBatchRecordsEachSendBeforeItsSenderGoesOn(t *testing.T) {
	const conc = 3
	f := newBatch(conc)
	f.ledger.markDelay = 2 * time.Millisecond // a statement's round trip
	var (
		mu         sync.Mutex
		accepted   []string
		maxInDoubt int
	)
	f.mail.accepted = func(m email.Message) {
		if m.BeforeEnd == nil {
			t.Error("a batch message without BeforeEnd: nothing bounds the messages in doubt")
		}
		mu.Lock()
		defer mu.Unlock()
		maxInDoubt = max(maxInDoubt, f.ledger.claimed(accepted))
		accepted = append(accepted, m.To[:3]+"/news")
	}
	// Two batches at once (two pages of two broadcasts) share the slots.
	rows := recipients(90)
	var wg sync.WaitGroup
	for _, part := range [][]crm.Recipient{rows[:45], rows[45:]} {
		wg.Go(func() { require.NoError(t, f.sender.SendBatch(context.Background(), f.batch(part))) })
	}
	wg.Wait()
	requireOnceEach(t, f.mail, 90)
	require.LessOrEqual(t, maxInDoubt, conc-1,
		"messages accepted by SMTP and not yet recorded as sent when another one was accepted")
	require.Zero(t, f.ledger.claimed(accepted), "every send recorded when the batches return")
}

func TestSendBatchReportsItsChunksInOrder(t *testing.T) {
	f := newBatch(2)
	require.NoError(t, f.sender.SendBatch(t.Context(), f.batch(recipients(60))))
	f.mu.Lock()
	defer f.mu.Unlock()
	// Chunks ramp up from 4 messages per connection: 8, 16, 32, then the rest.
	require.Equal(t, []string{"c07", "c23", "c55", "c59"}, f.done)
	require.Equal(t, sendonce.Counts{Sent: 60}, f.sum)
	require.Equal(t, 2, f.sender.Concurrency())
	require.Equal(t, fmt.Sprint(email.DefaultConnections), fmt.Sprint(sendonce.New(f.ledger, f.mail, 0, nil).Concurrency()))
}

// A recipient the audience query flags for the minimum gap, and one the
// claim's contact policy defers (a journey email went out after the
// query), are counted Deferred and not sent; only the claim's deferral
// reached the ledger and counts in the metrics.
func TestSendBatchCountsDeferralsOfTheQueryAndTheClaim(t *testing.T) {
	f := newBatch(2)
	rows := recipients(4)
	rows[1].Skip = crm.SkipMinGap
	f.ledger.deferUntil["c02"] = time.Now().Add(time.Hour)
	b := f.batch(rows)
	b.Letter = func(rc crm.Recipient) (sendonce.Letter, error) {
		l, err := batchLetter(rc)
		l.Claim.Policy = &crm.ContactPolicy{MinGap: time.Hour}
		return l, err
	}
	require.NoError(t, f.sender.SendBatch(t.Context(), b))
	_, sum := f.position()
	require.Equal(t, sendonce.Counts{Sent: 2, Deferred: 2}, sum)
	require.Equal(t, []string{"c00@example.test", "c03@example.test"}, f.mail.to())
	require.Equal(t, ledgerRow{}, f.ledger.row("c02/news"), "a deferred claim is not recorded")
	require.Equal(t, map[string]int{"sent": 2, "deferred": 1}, f.metrics.counts())
}
