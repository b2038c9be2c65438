package sendonce_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/sendonce"
)

type oneFixture struct {
	ledger  *memLedger
	mail    *fakeMailer
	metrics *counter
	sender  *sendonce.Sender
}

func newOne() *oneFixture {
	f := &oneFixture{ledger: newLedger(), mail: &fakeMailer{}, metrics: &counter{}}
	f.sender = sendonce.New(f.ledger, f.mail, 0, f.metrics)
	return f
}

func TestSendSendsOnceAndMarksItSent(t *testing.T) {
	f := newOne()
	l := letter("c1", crm.CategoryMarketing)

	res, err := f.sender.Send(t.Context(), l)
	require.NoError(t, err)
	require.Equal(t, sendonce.Result{Outcome: sendonce.Sent}, res)
	require.Equal(t, crm.SendSent, f.ledger.row(l.Claim.Key).status, "marked sent")
	require.Nil(t, f.mail.sent[0].BeforeEnd, "a single send holds no send slot")

	// A retry of the same key (the activity retried, the step replayed).
	res, err = f.sender.Send(t.Context(), l)
	require.NoError(t, err)
	require.Equal(t, sendonce.Result{Outcome: sendonce.Duplicate}, res)
	require.Len(t, f.mail.sent, 1, "the duplicate is not sent")
	require.Equal(t, map[string]int{"sent": 1, "duplicate": 1}, f.metrics.counts())
}

func TestSendAnswersWithoutSendingWhenTheLedgerSaysSo(t *testing.T) {
	f := newOne()
	ctx := t.Context()

	unsubscribed := letter("c1", crm.CategoryMarketing)
	require.NoError(t, f.ledger.Suppress(ctx, unsubscribed.Claim.Email, "c1", crm.ReasonUnsubscribed))
	res, err := f.sender.Send(ctx, unsubscribed)
	require.NoError(t, err)
	require.Equal(t, sendonce.Suppressed, res.Outcome)
	require.NotEmpty(t, res.Reason)

	// Transactional mail still reaches an unsubscribed address.
	notice := letter("c1", crm.CategoryTransactional)
	notice.Claim.Key = "c1/notice"
	res, err = f.sender.Send(ctx, notice)
	require.NoError(t, err)
	require.Equal(t, sendonce.Sent, res.Outcome)

	// Planned in stage 2 of the journey; the customer is in stage 3 now.
	moved := letter("c2", crm.CategoryMarketing)
	moved.Claim.StageSeq = 2
	f.ledger.stageSeq["c2"] = 3
	res, err = f.sender.Send(ctx, moved)
	require.NoError(t, err)
	require.Equal(t, sendonce.Cancelled, res.Outcome)
	require.NotEmpty(t, res.Reason)

	failedBefore := letter("c3", crm.CategoryMarketing)
	_, err = f.ledger.ClaimSend(ctx, failedBefore.Claim)
	require.NoError(t, err)
	require.NoError(t, f.ledger.MarkFailed(ctx, failedBefore.Claim.Key, "550", true))
	res, err = f.sender.Send(ctx, failedBefore)
	require.NoError(t, err)
	require.Equal(t, sendonce.Failed, res.Outcome)

	require.Equal(t, []string{"c1@example.test"}, f.mail.to(), "only the transactional notice went out")
	require.Equal(t, map[string]int{"sent": 1, "suppressed": 1, "cancelled": 1}, f.metrics.counts(),
		"a failure recorded earlier was counted when it happened")
}

func TestSendWaitsForAnotherAttemptsClaim(t *testing.T) {
	f := newOne()
	l := letter("c1", crm.CategoryMarketing)
	_, err := f.ledger.ClaimSend(t.Context(), l.Claim) // another attempt, in flight
	require.NoError(t, err)

	_, err = f.sender.Send(t.Context(), l)
	require.Error(t, err)
	require.NotErrorIs(t, err, sendonce.ErrRefused, "tried again later")
	require.Empty(t, f.mail.sent)
	require.Equal(t, map[string]int{"retry": 1}, f.metrics.counts())
}

func TestSendRecordsPermanentRefusals(t *testing.T) {
	f := newOne()
	ctx := t.Context()
	f.mail.fail = func(to string) error {
		switch to {
		case "c1@example.test":
			return &email.PermanentError{Code: 552, Err: errors.New("552 message too large")}
		case "c2@example.test":
			return &email.PermanentError{Code: 550, EnhancedCode: "5.1.1", Recipient: true, Err: errors.New("550 5.1.1 user unknown")}
		}
		return nil
	}

	tooLarge := letter("c1", crm.CategoryMarketing)
	res, err := f.sender.Send(ctx, tooLarge)
	require.NoError(t, err, "a permanent refusal is an answer, not an error")
	require.Equal(t, sendonce.Failed, res.Outcome)
	require.Contains(t, res.Reason, "too large")
	require.True(t, f.ledger.row(tooLarge.Claim.Key).permanent)

	bounced := letter("c2", crm.CategoryMarketing)
	res, err = f.sender.Send(ctx, bounced)
	require.NoError(t, err)
	require.Equal(t, sendonce.Bounced, res.Outcome)
	require.Equal(t, crm.ReasonBounced, f.ledger.suppressed["c2@example.test"], "a hard bounce suppresses the address")

	// Neither is tried again; the bounced address gets no other mail.
	res, err = f.sender.Send(ctx, tooLarge)
	require.NoError(t, err)
	require.Equal(t, sendonce.Failed, res.Outcome)
	next := letter("c2", crm.CategoryMarketing)
	next.Claim.Key = "c2/next"
	res, err = f.sender.Send(ctx, next)
	require.NoError(t, err)
	require.Equal(t, sendonce.Suppressed, res.Outcome)
	require.Equal(t, map[string]int{"failed": 1, "bounced": 1, "suppressed": 1}, f.metrics.counts())
}

func TestSendRetriesATransientFailureUnderTheSameKey(t *testing.T) {
	f := newOne()
	down := true
	f.mail.fail = func(string) error {
		if down {
			return errors.New("421 4.3.2 service not available")
		}
		return nil
	}
	l := letter("c1", crm.CategoryMarketing)
	_, err := f.sender.Send(t.Context(), l)
	require.Error(t, err)
	require.NotErrorIs(t, err, sendonce.ErrRefused)
	row := f.ledger.row(l.Claim.Key)
	require.Equal(t, crm.SendFailed, row.status, "recorded, so the retry takes the claim over at once")
	require.False(t, row.permanent)

	down = false
	res, err := f.sender.Send(t.Context(), l)
	require.NoError(t, err)
	require.Equal(t, sendonce.Sent, res.Outcome)
	require.Equal(t, 2, f.ledger.row(l.Claim.Key).attempts)
	require.Equal(t, map[string]int{"retry": 1, "sent": 1}, f.metrics.counts())
}

func TestSendTellsRefusedClaimsFromTransientLedgerErrors(t *testing.T) {
	f := newOne()
	l := letter("c1", crm.CategoryMarketing)

	f.ledger.claimErr = errors.New("connection refused")
	_, err := f.sender.Send(t.Context(), l)
	require.Error(t, err)
	require.NotErrorIs(t, err, sendonce.ErrRefused, "the database may come back")
	require.Equal(t, map[string]int{"retry": 1}, f.metrics.counts())

	f.ledger.claimErr = &crm.ValidationError{Field: "email", Problem: "must be a bare email address"}
	_, err = f.sender.Send(t.Context(), l)
	require.ErrorIs(t, err, sendonce.ErrRefused)
	require.ErrorIs(t, err, crm.ErrInvalid, "the ledger's own error stays visible")
	require.Contains(t, err.Error(), "claim send c1/news")
	require.Equal(t, map[string]int{"retry": 1}, f.metrics.counts(), "a refusal is no retry")
	require.Empty(t, f.mail.sent)
}

func TestSendThatCannotBeMarkedIsAnError(t *testing.T) {
	f := newOne()
	l := letter("c1", crm.CategoryMarketing)
	f.mail.accepted = func(email.Message) {
		// The row is gone by the time the server accepted.
		f.ledger.mu.Lock()
		delete(f.ledger.rows, l.Claim.Key)
		f.ledger.mu.Unlock()
	}
	_, err := f.sender.Send(t.Context(), l)
	require.ErrorIs(t, err, crm.ErrNotFound)
	require.NotErrorIs(t, err, sendonce.ErrRefused, "only a claim is refused for good")
	require.Contains(t, err.Error(), "mark send c1/news sent")
	require.Equal(t, map[string]int{"retry": 1}, f.metrics.counts())
}

// The ledger's contact policy defers a marketing email: nothing is sent or
// recorded, the answer carries the rule and the time, and the same key
// goes out once the policy allows it.
func TestSendPassesADeferralThrough(t *testing.T) {
	f := newOne()
	ctx := t.Context()
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	f.ledger.deferUntil["c1"] = until
	l := letter("c1", crm.CategoryMarketing)
	l.Claim.Policy = &crm.ContactPolicy{MinGap: 2 * time.Hour}

	res, err := f.sender.Send(ctx, l)
	require.NoError(t, err)
	require.Equal(t, sendonce.Result{Outcome: sendonce.Deferred, Reason: campaign.ReasonMinGap, Until: until}, res)
	require.Empty(t, f.mail.sent)
	require.Equal(t, ledgerRow{}, f.ledger.row(l.Claim.Key), "nothing recorded")
	require.Equal(t, map[string]int{"deferred": 1}, f.metrics.counts())

	delete(f.ledger.deferUntil, "c1")
	res, err = f.sender.Send(ctx, l)
	require.NoError(t, err)
	require.Equal(t, sendonce.Sent, res.Outcome, "the same key, later")
	require.Equal(t, map[string]int{"deferred": 1, "sent": 1}, f.metrics.counts())
}
