package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/testenv"
)

const testFrom = "news@lifecycle.test"

// fakeMailer records messages; fail decides per recipient address.
type fakeMailer struct {
	mu   sync.Mutex
	sent []email.Message
	fail func(to string) error
}

func (m *fakeMailer) Send(_ context.Context, msg email.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(msg.To); err != nil {
			return err
		}
	}
	m.sent = append(m.sent, msg)
	return nil
}

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

type broadcastFixture struct {
	store *crm.Store
	mail  *fakeMailer
	acts  *Activities
}

func newBroadcastFixture(t *testing.T) *broadcastFixture {
	t.Helper()
	ctx := t.Context()
	url := testenv.NewDatabase(t)
	store, err := crm.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Migrate(ctx))
	reg := campaign.NewRegistry()
	require.NoError(t, reg.LoadEmbedded())
	mail := &fakeMailer{}
	return &broadcastFixture{store: store, mail: mail, acts: &Activities{
		CRM: store, Mail: mail, Campaigns: reg, Signer: email.NewSigner([]byte("0123456789abcdef-test")),
		PublicBaseURL: "https://lifecycle.test", From: testFrom, Concurrency: 3,
	}}
}

// seed adds contacts c00..c<n-1> at addresses cNN@<domain>.
func (f *broadcastFixture) seed(t *testing.T, n int, edit func(i int, c *crm.Contact)) {
	t.Helper()
	for i := range n {
		c := crm.Contact{CustomerID: fmt.Sprintf("c%02d", i), Email: fmt.Sprintf("c%02d@bc.test", i), FirstName: "Kim",
			LastName: fmt.Sprint(i), Consent: true, Stage: crm.StageActive, TimeZone: "UTC"}
		if edit != nil {
			edit(i, &c)
		}
		require.NoError(t, f.store.UpsertContact(t.Context(), c))
	}
}

func (f *broadcastFixture) page(t *testing.T, in BroadcastPageInput, hb *broadcastHeartbeat) (BroadcastPageResult, error) {
	t.Helper()
	r, _, err := f.pageBeats(t, in, hb)
	return r, err
}

// pageBeats runs one attempt of BroadcastSendPage and also returns the last
// heartbeat it recorded.
func (f *broadcastFixture) pageBeats(t *testing.T, in BroadcastPageInput, hb *broadcastHeartbeat) (BroadcastPageResult, *broadcastHeartbeat, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	if hb != nil {
		env.SetHeartbeatDetails(*hb)
	}
	var mu sync.Mutex
	var last *broadcastHeartbeat
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var h broadcastHeartbeat
		if details.Get(&h) == nil {
			mu.Lock()
			last = &h
			mu.Unlock()
		}
	})
	v, err := env.ExecuteActivity(f.acts.BroadcastSendPage, in)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return BroadcastPageResult{}, last, err
	}
	var r BroadcastPageResult
	require.NoError(t, v.Get(&r))
	return r, last, nil
}

func addPage(total, r BroadcastPageResult) BroadcastPageResult {
	total.Sent += r.Sent
	total.Duplicate += r.Duplicate
	total.Suppressed += r.Suppressed
	total.Failed += r.Failed
	total.Deferred += r.Deferred
	return total
}

func pageInput(size int) BroadcastPageInput {
	return BroadcastPageInput{Broadcast: Broadcast{BroadcastID: "news-1", CampaignID: "saas-lifecycle", Template: "holiday_new_year", PageSize: size}}
}

func (f *broadcastFixture) status(t *testing.T, customerID string) crm.Send {
	t.Helper()
	s, err := f.store.GetSend(t.Context(), BroadcastSendKey(customerID, "news-1"))
	require.NoError(t, err)
	return s
}

func TestSendPageSendsOncePerRecipientWithTheRulesApplied(t *testing.T) {
	f := newBroadcastFixture(t)
	ctx := t.Context()
	f.seed(t, 12, func(i int, c *crm.Contact) {
		switch i {
		case 3:
			c.Consent = false // not in the audience at all
		case 5:
			c.Stage = crm.StageTrial
		}
	})
	require.NoError(t, f.store.Suppress(ctx, "C01@bc.test", "", crm.ReasonBounced))
	// c02 had three marketing emails this week: over the campaign's cap.
	for i := range 3 {
		key := fmt.Sprintf("c02/journey/%d", i)
		_, err := f.store.ClaimSend(ctx, crm.SendClaim{Key: key, CustomerID: "c02", Email: "c02@bc.test", Template: "t",
			Category: crm.CategoryMarketing, MessageID: "<" + fmt.Sprint(i) + "@x>"})
		require.NoError(t, err)
		require.NoError(t, f.store.MarkSent(ctx, key, time.Now().Add(-time.Hour)))
	}

	in := pageInput(5)
	in.Broadcast.Segment = BroadcastSegment{Stages: []string{crm.StageActive}}
	var total BroadcastPageResult
	pages := 0
	for {
		r, err := f.page(t, in, nil)
		require.NoError(t, err)
		pages++
		require.Equal(t, "v1", r.CampaignVersion)
		total = addPage(total, r)
		in.Cursor = r.NextCursor
		if r.Done {
			break
		}
	}
	require.Equal(t, 3, pages) // 10 active contacts with consent, 5 a page
	require.Equal(t, BroadcastPageResult{Sent: 8, Suppressed: 1, Deferred: 1}, total)
	require.Equal(t, []string{"c00@bc.test", "c04@bc.test", "c06@bc.test", "c07@bc.test", "c08@bc.test",
		"c09@bc.test", "c10@bc.test", "c11@bc.test"}, f.mail.to())

	// Each message: Message-ID from the send key, unsubscribe link of the
	// recipient, marketing, rendered for the recipient.
	msg := f.mail.sent[slices.IndexFunc(f.mail.sent, func(m email.Message) bool { return m.To == "c04@bc.test" })]
	require.Equal(t, email.MessageIDFor("c04/broadcast/news-1", testFrom), msg.MessageID)
	require.Equal(t, email.CategoryMarketing, msg.Category)
	u, err := url.Parse(msg.UnsubscribeURL)
	require.NoError(t, err)
	require.Equal(t, "c04", u.Query().Get("c"))
	require.True(t, f.acts.Signer.Verify("c04", u.Query().Get("t")))
	require.Contains(t, msg.Text, "Hi Kim")
	require.Contains(t, msg.Text, msg.UnsubscribeURL)
	require.Equal(t, "Kim 4", msg.ToName)
	require.Equal(t, map[string]string{"X-Broadcast": "news-1", "X-Campaign": "saas-lifecycle@v1"}, msg.Headers)

	sent := f.status(t, "c04")
	require.Equal(t, crm.SendSent, sent.Status)
	require.Equal(t, msg.MessageID, sent.MessageID)
	require.Equal(t, crm.CategoryMarketing, sent.Category)
	_, err = f.store.GetSend(ctx, BroadcastSendKey("c01", "news-1"))
	require.ErrorIs(t, err, crm.ErrNotFound, "recipients skipped by the SQL rules leave no ledger row")

	// The same broadcast again: everybody who got it is a duplicate.
	f.mail.sent = nil
	in.Cursor = ""
	in.Broadcast.PageSize = 50
	r, err := f.page(t, in, nil)
	require.NoError(t, err)
	require.Equal(t, BroadcastPageResult{Duplicate: 8, Suppressed: 1, Deferred: 1, NextCursor: "c11", Done: true, CampaignVersion: "v1"}, r)
	require.Empty(t, f.mail.sent)
}

func TestSendPageRecordsPermanentFailuresAndGoesOn(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 6, nil)
	f.mail.fail = func(to string) error {
		if to == "c02@bc.test" {
			return &email.PermanentError{Code: 550, Err: errors.New("550 5.1.1 no such mailbox")}
		}
		return nil
	}
	r, err := f.page(t, pageInput(10), nil)
	require.NoError(t, err)
	require.Equal(t, 5, r.Sent)
	require.Equal(t, 1, r.Failed)
	s := f.status(t, "c02")
	require.Equal(t, crm.SendFailed, s.Status)
	require.True(t, s.Permanent)
	require.Contains(t, s.Error, "no such mailbox")

	// Never retried: a second pass counts it failed without sending.
	f.mail.sent = nil
	r, err = f.page(t, pageInput(10), nil)
	require.NoError(t, err)
	require.Equal(t, BroadcastPageResult{Duplicate: 5, Failed: 1, NextCursor: "c05", Done: true, CampaignVersion: "v1"}, r)
	require.Empty(t, f.mail.sent)
}

func TestSendPageTransientFailureRetriesWithoutDuplicates(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 40, nil)
	f.acts.Concurrency = 1 // deterministic order
	var mu sync.Mutex
	down := true
	f.mail.fail = func(to string) error {
		mu.Lock()
		defer mu.Unlock()
		if down && to == "c07@bc.test" {
			return errors.New("dial tcp 127.0.0.1:25: connection refused")
		}
		return nil
	}
	_, err := f.page(t, pageInput(40), nil)
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		require.False(t, appErr.NonRetryable(), "a transient failure is retried")
	}
	firstTry := f.mail.to()
	require.Subset(t, firstTry, []string{"c00@bc.test", "c01@bc.test", "c02@bc.test", "c03@bc.test", "c04@bc.test", "c05@bc.test", "c06@bc.test"})
	require.Less(t, len(firstTry), 40, "sending stops at the failure")
	require.Equal(t, crm.SendFailed, f.status(t, "c07").Status)
	// The claims that were never tried are released (no lease to wait for).
	require.Equal(t, crm.SendFailed, f.status(t, "c08").Status)
	require.False(t, f.status(t, "c08").Permanent)

	mu.Lock()
	down = false
	mu.Unlock()
	r, err := f.page(t, pageInput(40), nil)
	require.NoError(t, err)
	require.Equal(t, 40-len(firstTry), r.Sent)
	require.Equal(t, len(firstTry), r.Duplicate)
	require.Len(t, f.mail.sent, 40)
	seen := map[string]bool{}
	for _, m := range f.mail.sent {
		require.False(t, seen[m.To], "%s got two emails", m.To)
		seen[m.To] = true
	}
	require.Equal(t, 2, f.status(t, "c07").Attempts)
}

func TestSendPageResumesFromItsHeartbeat(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 10, nil)
	// An earlier attempt of this page heartbeated: up to c03 done, 4 sent.
	hb := &broadcastHeartbeat{Start: "", Cursor: "c03", Result: BroadcastPageResult{Sent: 4}}
	r, err := f.page(t, pageInput(8), hb)
	require.NoError(t, err)
	// The page still ends where the first attempt's would have (8 contacts).
	require.Equal(t, BroadcastPageResult{Sent: 8, NextCursor: "c07", CampaignVersion: "v1"}, r)
	require.Equal(t, []string{"c04@bc.test", "c05@bc.test", "c06@bc.test", "c07@bc.test"}, f.mail.to())

	// A heartbeat of another page (another start) is not used.
	f.mail.sent = nil
	other := &broadcastHeartbeat{Start: "zzz", Cursor: "c09", Result: BroadcastPageResult{Sent: 99}}
	in := pageInput(8)
	in.Cursor = "c07"
	r, err = f.page(t, in, other)
	require.NoError(t, err)
	require.Equal(t, BroadcastPageResult{Sent: 2, NextCursor: "c09", Done: true, CampaignVersion: "v1"}, r)
}

func TestSendPageWaitsForTheClaimsOfADeadAttempt(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 3, nil)
	// A worker claimed c01's send and died; its lease runs 1.5 s.
	_, err := f.store.ClaimSend(t.Context(), crm.SendClaim{Key: BroadcastSendKey("c01", "news-1"), CustomerID: "c01",
		Email: "c01@bc.test", Template: "holiday_new_year", Category: crm.CategoryMarketing,
		MessageID: email.MessageIDFor(BroadcastSendKey("c01", "news-1"), testFrom), Lease: 1500 * time.Millisecond})
	require.NoError(t, err)
	r, err := f.page(t, pageInput(10), nil)
	require.NoError(t, err)
	require.Equal(t, 3, r.Sent)
	require.Equal(t, []string{"c00@bc.test", "c01@bc.test", "c02@bc.test"}, f.mail.to())
	s := f.status(t, "c01")
	require.Equal(t, crm.SendSent, s.Status)
	require.Equal(t, 2, s.Attempts, "taken over after the lease")
}

func TestSendPageDefersRecipientsInQuietHours(t *testing.T) {
	f := newBroadcastFixture(t)
	// The campaign's quiet hours are 21:00-08:00 local time.
	now := time.Now()
	var quiet, awake string
	for _, name := range []string{"UTC", "Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin", "America/New_York",
		"America/Los_Angeles", "Pacific/Honolulu", "Pacific/Auckland", "Asia/Dubai", "America/Sao_Paulo"} {
		loc, err := time.LoadLocation(name)
		require.NoError(t, err)
		h := now.In(loc).Hour()
		switch {
		case (h >= 22 || h < 7) && quiet == "":
			quiet = name
		case h >= 9 && h < 20 && awake == "":
			awake = name
		}
	}
	if quiet == "" || awake == "" {
		t.Skipf("no zone pair found for %s", now)
	}
	f.seed(t, 4, func(i int, c *crm.Contact) {
		c.TimeZone = []string{quiet, awake, quiet, ""}[i] // "" is the campaign default, UTC
	})
	in := pageInput(10)
	in.Broadcast.RespectQuietHours = true
	r, err := f.page(t, in, nil)
	require.NoError(t, err)
	utcQuiet := now.UTC().Hour() >= 21 || now.UTC().Hour() < 8
	want := BroadcastPageResult{Sent: 1, Deferred: 2, NextCursor: "c03", Done: true, CampaignVersion: "v1"}
	if utcQuiet {
		want.Deferred++
	} else {
		want.Sent++
	}
	require.Equal(t, want, r)

	// By default a broadcast goes now: the deferred ones are sent.
	in.Broadcast.RespectQuietHours = false
	r, err = f.page(t, in, nil)
	require.NoError(t, err)
	require.Equal(t, 4, r.Sent+r.Duplicate)
	require.Len(t, f.mail.sent, 4)
}

func TestSendPageRefusesWhatCannotWork(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 2, nil)
	for name, in := range map[string]BroadcastPageInput{
		"unknown template": func() BroadcastPageInput { in := pageInput(10); in.Broadcast.Template = "nope"; return in }(),
		"unknown campaign": func() BroadcastPageInput { in := pageInput(10); in.Broadcast.CampaignID = "nope"; return in }(),
		"bad input":        func() BroadcastPageInput { in := pageInput(10); in.Broadcast.BroadcastID = ""; return in }(),
	} {
		_, err := f.page(t, in, nil)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr, name)
		require.True(t, appErr.NonRetryable(), name)
		require.Equal(t, ErrBadInput, appErr.Type(), name)
	}
	require.Empty(t, f.mail.sent)
}

// A chunk stopped because a later chunk of the page failed must not be
// counted as done: the retry resumes before it and reaches everybody once.
func TestSendPageFailureInOneChunkDoesNotSkipTheChunkBefore(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 40, nil)
	f.acts.Concurrency = 1
	var mu sync.Mutex
	down := true
	f.mail.fail = func(to string) error {
		mu.Lock()
		failing := down
		mu.Unlock()
		switch {
		case !failing:
			return nil
		case to < "c04": // the first chunk (4 contacts) is slow
			time.Sleep(40 * time.Millisecond)
			return nil
		case to == "c05@bc.test": // the second chunk fails early
			return errors.New("421 4.3.2 service not available")
		}
		return nil
	}
	_, hb, err := f.pageBeats(t, pageInput(40), nil)
	require.Error(t, err)
	first := f.mail.to()
	require.NotContains(t, first, "c05@bc.test")
	if hb != nil {
		// The position is never past a recipient that was not sent.
		for i := range 40 {
			addr := fmt.Sprintf("c%02d@bc.test", i)
			if fmt.Sprintf("c%02d", i) <= hb.Cursor {
				require.Contains(t, first, addr, "heartbeat position %q is past %s, which was not sent", hb.Cursor, addr)
			}
		}
	}

	mu.Lock()
	down = false
	mu.Unlock()
	r, _, err := f.pageBeats(t, pageInput(40), hb)
	require.NoError(t, err)
	require.Len(t, f.mail.sent, 40)
	seen := map[string]bool{}
	for _, m := range f.mail.sent {
		require.False(t, seen[m.To], "%s got two emails", m.To)
		seen[m.To] = true
	}
	require.Equal(t, 40, r.Recipients(), "%+v", r)
}

// slotMailer accepts every message and, before each one, counts the
// messages it accepted earlier that the ledger still holds as claimed:
// the ones a crash at that moment would leave in doubt.
type slotMailer struct {
	t     *testing.T
	store *crm.Store

	mu         sync.Mutex
	accepted   []string // send keys
	maxInDoubt int
}

// Send does what the real mailer does around the end of the data: it
// calls BeforeEnd, then the server accepts. At that moment it counts the
// messages accepted before and not yet recorded as sent.
func (m *slotMailer) Send(ctx context.Context, msg email.Message) error {
	if msg.BeforeEnd == nil {
		m.t.Error("a broadcast message without BeforeEnd: nothing bounds the messages in doubt")
	} else if err := msg.BeforeEnd(); err != nil {
		return err
	}
	m.mu.Lock()
	keys := slices.Clone(m.accepted)
	m.mu.Unlock()
	var inDoubt int
	err := m.store.Pool().QueryRow(ctx,
		`SELECT count(*) FROM email_log WHERE send_key = ANY($1) AND status = 'claimed'`, keys).Scan(&inDoubt)
	if err != nil {
		m.t.Errorf("count the messages in doubt: %v", err)
		return err
	}
	customerID, _, _ := strings.Cut(msg.To, "@")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxInDoubt = max(m.maxInDoubt, inDoubt)
	m.accepted = append(m.accepted, BroadcastSendKey(customerID, "news-1"))
	return nil
}

// When the server accepts a message, at most Concurrency-1 others have
// been accepted and not yet recorded as sent, so a crash leaves at most
// Concurrency messages in doubt — one per SMTP connection.
func TestSendPageRecordsEachSendBeforeItsSenderGoesOn(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 90, nil)
	mail := &slotMailer{t: t, store: f.store}
	f.acts.Mail = mail
	f.acts.Concurrency = 3
	r, err := f.page(t, pageInput(100), nil)
	require.NoError(t, err)
	require.Equal(t, 90, r.Sent)
	require.Len(t, mail.accepted, 90)
	require.LessOrEqual(t, mail.maxInDoubt, f.acts.Concurrency-1,
		"messages accepted by SMTP and not yet recorded as sent when another one was accepted")
	var claimed int
	require.NoError(t, f.store.Pool().QueryRow(t.Context(),
		`SELECT count(*) FROM email_log WHERE status <> 'sent'`).Scan(&claimed))
	require.Zero(t, claimed, "every send recorded when the page returns")
}

// emailCounts reads lifecycle_emails_total by outcome, and its help text.
func emailCounts(t *testing.T, reg *prometheus.Registry) (map[string]float64, string) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	counts := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "lifecycle_emails_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					counts[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		return counts, mf.GetHelp()
	}
	return counts, ""
}

// Every recipient's outcome counts in lifecycle_emails_total: sent,
// duplicate (sent by an earlier attempt), suppressed, failed (refused for
// good) and retry (a transient failure the page's retry sends again).
func TestSendPageCountsEveryEmailInTheMetrics(t *testing.T) {
	f := newBroadcastFixture(t)
	reg := prometheus.NewRegistry()
	f.acts.Metrics = NewMetrics(reg)
	f.acts.Concurrency = 1 // one sender: c00-c03 in order (the first chunk), then c04
	f.seed(t, 5, nil)
	require.NoError(t, f.store.Suppress(t.Context(), "c01@bc.test", "", crm.ReasonUnsubscribed))
	var mu sync.Mutex
	down := true
	// c04 is in the second chunk, which starts sending while the first one
	// still does: its failure waits until c03 was tried, or it would stop
	// the first chunk before c03 (a position never moves past it anyway).
	c03Tried := make(chan struct{})
	var c03Once sync.Once
	f.mail.fail = func(to string) error {
		mu.Lock()
		failing := down
		mu.Unlock()
		switch {
		case to == "c02@bc.test":
			return &email.PermanentError{Code: 550, Err: errors.New("550 5.1.1 no such mailbox")}
		case to == "c03@bc.test":
			c03Once.Do(func() { close(c03Tried) })
			return &email.PermanentError{Code: 550, EnhancedCode: "5.1.1", Recipient: true, Err: errors.New("550 5.1.1 user unknown")}
		case to == "c04@bc.test" && failing:
			select {
			case <-c03Tried:
			case <-time.After(10 * time.Second):
			}
			return errors.New("421 4.3.2 service not available")
		}
		return nil
	}

	// c00 sent, c01 suppressed, c02 refused, c03's address refused (a hard
	// bounce: suppressed from now on), c04 a transient failure that fails
	// the attempt.
	_, err := f.page(t, pageInput(10), nil)
	require.Error(t, err)
	counts, help := emailCounts(t, reg)
	require.Equal(t, map[string]float64{"sent": 1, "suppressed": 1, "failed": 1, "bounced": 1, "retry": 1}, counts)
	suppressed, reason, err := f.store.IsSuppressed(t.Context(), "c03@bc.test")
	require.NoError(t, err)
	require.True(t, suppressed, "a hard bounce suppresses the address")
	require.Equal(t, crm.ReasonBounced, reason)

	// The retry: c00 was sent by the first attempt, c02's and c03's
	// failures were counted when they happened, c04 goes out.
	mu.Lock()
	down = false
	mu.Unlock()
	r, err := f.page(t, pageInput(10), nil)
	require.NoError(t, err)
	t.Logf("retry: %+v", r)
	require.Equal(t, 1, r.Sent)
	require.Equal(t, 1, r.Duplicate)
	require.Equal(t, "c04", r.NextCursor)
	require.Equal(t, 5, r.Recipients(), "every recipient counted once")
	counts, _ = emailCounts(t, reg)
	require.Equal(t, 2.0, counts["sent"])
	require.Equal(t, 1.0, counts["bounced"], "the bounce is not counted again")
	require.Equal(t, 1.0, counts["retry"])
	require.Equal(t, 1.0, counts["failed"], "a failure the ledger holds is not counted again")
	for outcome := range counts {
		require.Contains(t, help, outcome, "the counter's help lists every outcome")
	}
}
