package activities_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit/mailpittest"
	"github.com/acme/lifecycle/internal/testenv"
)

// A trial signup: the contact is created once (even when the upsert is
// retried) and the welcome email arrives once, rendered, with both parts,
// a signed one-click unsubscribe link and the Message-ID of its send key.
func TestSignupCreatesContactAndSendsWelcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("signup")

	c := contactFor(id, addr)
	require.NoError(t, f.upsertContact(c))
	require.NoError(t, f.upsertContact(c), "a retried upsert")

	got, err := f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, addr, got.Email)
	require.Equal(t, "Ada", got.FirstName)
	require.Equal(t, "Lovelace", got.LastName)
	require.Equal(t, "Analytical Engines Ltd", got.Company)
	require.Equal(t, "CTO", got.Role)
	require.Equal(t, 250, got.CompanySize)
	require.Equal(t, "Europe/Berlin", got.TimeZone)
	require.Equal(t, crm.LeadReferral, got.LeadSource)
	require.Equal(t, campaignID, got.CampaignID)
	require.Equal(t, campaignVersion, got.CampaignVersion)
	require.True(t, got.Consent)
	require.False(t, got.Erased())
	var rows int
	require.NoError(t, f.store.Pool().QueryRow(f.ctx,
		`SELECT count(*) FROM contacts WHERE customer_id = $1 OR email = $2`, id, addr).Scan(&rows))
	require.Equal(t, 1, rows, "contact rows")

	in := f.marketingSend(id, addr)
	require.Equal(t, f.welcomeTemplate(), in.Template)
	tpl := f.camp.Templates[in.Template]
	require.True(t, tpl.IsMarketing(), "the welcome email is marketing mail")

	res := f.mustSend(in)
	wantID := email.MessageIDFor(in.Key, fromAddress)
	require.Equal(t, activities.SendSent, res.Status, "result %+v", res)
	require.Equal(t, wantID, res.MessageID)

	// What the customer should get: the template rendered with the
	// customer's data and their own unsubscribe link.
	wantUnsub := f.signer.UnsubscribeURL(publicBaseURL, id)
	data := in.Data
	data.UnsubscribeURL = wantUnsub
	want, err := f.camp.Render(in.Template, data)
	require.NoError(t, err)

	sum := f.waitForOne(addr)
	msg, err := f.mp.Message(f.ctx, sum.ID)
	require.NoError(t, err)
	require.Len(t, msg.To, 1)
	require.Equal(t, addr, msg.To[0].Address)
	require.Equal(t, in.ToName, msg.To[0].Name)
	require.Equal(t, fromAddress, msg.From.Address)
	require.Equal(t, want.Subject, msg.Subject)
	if strings.Contains(tpl.Subject, ".FirstName") {
		require.Contains(t, msg.Subject, "Ada", "the subject uses the first name")
	}
	require.NotContains(t, msg.Subject, "{{", "unrendered subject")
	require.NotEmpty(t, strings.TrimSpace(msg.Text), "text part")
	require.NotEmpty(t, strings.TrimSpace(msg.HTML), "HTML part")
	require.Contains(t, msg.Text, "Ada")
	require.Contains(t, msg.Text, wantUnsub, "the text part shows the unsubscribe link")
	require.Contains(t, msg.HTML, "Ada")
	require.Equal(t, strings.Trim(wantID, "<>"), msg.MessageID)

	// The unsubscribe headers (RFC 8058), as Mailpit read them...
	require.Contains(t, msg.ListUnsubscribe.Header, wantUnsub)
	require.Equal(t, "List-Unsubscribe=One-Click", msg.ListUnsubscribe.HeaderPost)
	require.Empty(t, msg.ListUnsubscribe.Errors)
	// ...and as they are on the wire.
	raw, err := f.mp.Headers(f.ctx, sum.ID)
	require.NoError(t, err)
	h := http.Header(raw)
	require.Equal(t, wantID, h.Get("Message-Id"))
	require.Equal(t, "List-Unsubscribe=One-Click", h.Get("List-Unsubscribe-Post"))
	require.Equal(t, in.Step, h.Get("X-Journey-Step"))
	require.Equal(t, campaignID+"@"+campaignVersion, h.Get("X-Campaign"))
	link := unsubscribeLink(t, h.Get("List-Unsubscribe"))
	require.Equal(t, wantUnsub, link.String())
	require.Equal(t, "https", link.Scheme)
	require.Equal(t, "lifecycle.example", link.Host)
	require.Equal(t, "/api/v1/unsubscribe", link.Path)
	require.Equal(t, id, link.Query().Get("c"), "the link names this customer")
	token := link.Query().Get("t")
	require.True(t, f.signer.Verify(id, token), "the link's token verifies for %s", id)
	other, _ := newCustomer("other")
	require.False(t, f.signer.Verify(other, token), "the token must not work for another customer")
	require.False(t, email.NewSigner([]byte("another secret")).Verify(id, token), "the token must not verify under another secret")

	send, err := f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSent, send.Status)
	require.Equal(t, id, send.CustomerID)
	require.Equal(t, addr, send.Email)
	require.Equal(t, in.Template, send.Template)
	require.Equal(t, crm.CategoryMarketing, send.Category)
	require.Equal(t, wantID, send.MessageID)
	require.Equal(t, 1, send.Attempts)
	require.False(t, send.SentAt.IsZero())
}

// A send repeated with the same key (an activity retry, a replayed step)
// sends nothing more.
func TestSendEmailTwiceSendsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("twice")
	in := f.marketingSend(id, addr)

	first := f.mustSend(in)
	require.Equal(t, activities.SendSent, first.Status)
	stats := f.sender.Stats()

	second := f.mustSend(in)
	require.Equal(t, activities.SendDuplicate, second.Status, "result %+v", second)
	require.Equal(t, first.MessageID, second.MessageID)
	require.Equal(t, stats, f.sender.Stats(), "the duplicate must not talk to SMTP")

	f.waitForOne(addr)
	n, err := f.mp.CountByMessageID(f.ctx, first.MessageID)
	require.NoError(t, err)
	require.Equal(t, 1, n, "messages with Message-ID %s", first.MessageID)

	send, err := f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSent, send.Status)
	require.Equal(t, 1, send.Attempts)
}

// Concurrent attempts of one send (e.g. a start-to-close timeout let a
// second attempt start while the first still runs): exactly one sends; the
// others see a duplicate or a retryable "in flight" error.
func TestConcurrentSendEmailSendsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("race")
	in := f.marketingSend(id, addr)

	const n = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []string
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			v, err := f.env().ExecuteActivity(f.acts.SendEmail, in)
			outcome := ""
			if err != nil {
				outcome = "error: " + err.Error()
			} else {
				var res activities.SendEmailResult
				if gerr := v.Get(&res); gerr != nil {
					outcome = "decode: " + gerr.Error()
				} else {
					outcome = res.Status
				}
			}
			mu.Lock()
			results = append(results, outcome)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()

	sent := 0
	for _, r := range results {
		switch {
		case r == activities.SendSent:
			sent++
		case r == activities.SendDuplicate:
		case strings.HasPrefix(r, "error: ") && strings.Contains(r, "in flight"):
		default:
			t.Errorf("unexpected outcome %q", r)
		}
	}
	require.Equal(t, 1, sent, "outcomes %q", results)
	f.waitForOne(addr)
	count, err := f.mp.CountByMessageID(f.ctx, email.MessageIDFor(in.Key, fromAddress))
	require.NoError(t, err)
	require.Equal(t, 1, count)
}

// A recipient the SMTP server refuses (5xx) is a hard bounce: the activity
// returns a "bounced" result and no error, so Temporal does not retry, the
// address goes on the suppression list (no later email, journey or
// broadcast, tries it), and later attempts do not contact the server again.
func TestRefusedRecipientFailsOnceWithoutRetry(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, "--smtp-allowed-recipients", "^allowed@")
	f := newFixtureWithMail(t, mp.SMTPAddr(), mp.APIURL())
	reg := prometheus.NewRegistry()
	f.acts.Metrics = activities.NewMetrics(reg)

	// The private server works: an allowed recipient gets mail.
	okID, _ := newCustomer("allowed")
	okAddr := "allowed@" + testenv.RandomID(6) + ".example.test"
	require.Equal(t, activities.SendSent, f.mustSend(f.marketingSend(okID, okAddr)).Status)
	f.waitForOne(okAddr)

	id, addr := newCustomer("refused")
	in := f.marketingSend(id, addr)
	before := f.sender.Stats()
	res, err := f.sendEmail(in)
	require.NoError(t, err, "a permanent SMTP failure must not be an activity error")
	require.Equal(t, activities.SendBounced, res.Status, "result %+v", res)
	require.Contains(t, res.Reason, "550", "the reason carries the SMTP reply")
	suppressed, reason, err := f.store.IsSuppressed(f.ctx, addr)
	require.NoError(t, err)
	require.True(t, suppressed, "a hard bounce suppresses the address")
	require.Equal(t, crm.ReasonBounced, reason)
	other := f.marketingSend(id, addr)
	other.Key += "/another-step"
	require.Equal(t, activities.SendSuppressed, f.mustSend(other).Status, "no later email tries the address")
	require.Equal(t, 1.0, counterValue(t, reg, "lifecycle_emails_total", map[string]string{"outcome": "bounced"}))
	after := f.sender.Stats()
	require.Equal(t, before.Failed+1, after.Failed, "one refused attempt")
	require.Equal(t, before.Sent, after.Sent)

	send, err := f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendFailed, send.Status)
	require.True(t, send.Permanent)
	require.Contains(t, send.Error, "550")
	require.Equal(t, 1, send.Attempts)

	again, err := f.sendEmail(in)
	require.NoError(t, err)
	require.Equal(t, activities.SendFailed, again.Status, "result %+v", again)
	require.Equal(t, after, f.sender.Stats(), "the second call must not contact SMTP")
	send, err = f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendFailed, send.Status)
	require.Equal(t, 1, send.Attempts)

	f.requireNoMail(addr)
}

// An SMTP server that is down is a temporary failure: a retryable error,
// the ledger remembers a transient failure, and the retry once the server
// is back sends the email exactly once.
func TestSMTPDownIsRetriedAndSendsOnce(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	f := newFixtureWithMail(t, mp.SMTPAddr(), mp.APIURL())
	reg := prometheus.NewRegistry()
	f.acts.Metrics = activities.NewMetrics(reg)
	id, addr := newCustomer("down")
	in := f.marketingSend(id, addr)

	mp.Stop()
	_, err := f.sendEmail(in)
	requireRetryable(t, err)
	require.Equal(t, 1.0, counterValue(t, reg, "lifecycle_emails_total", map[string]string{"outcome": "retry"}),
		"a transient failure counts as retry")
	send, gerr := f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, gerr)
	require.Equal(t, crm.SendFailed, send.Status)
	require.False(t, send.Permanent, "an unreachable server is not a permanent failure")

	mp.Resume()
	res := f.mustSend(in)
	require.Equal(t, activities.SendSent, res.Status, "result %+v", res)
	f.waitForOne(addr)
	n, err := f.mp.CountByMessageID(f.ctx, res.MessageID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	send, err = f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSent, send.Status)
	require.Equal(t, 2, send.Attempts)
	require.Equal(t, 1.0, counterValue(t, reg, "lifecycle_emails_total", map[string]string{"outcome": "sent"}))
}

// Unsubscribed: marketing mail stops at once; transactional mail (the sales
// handoff notice to the owner, and even a notice to the customer) still
// goes. A bounce stops transactional mail too.
func TestSuppressedAddressGetsNoMarketingMail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("unsub")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))

	// The address arrives in another case than it was stored in.
	f.suppress(activities.SuppressInput{CustomerID: id, Email: strings.ToUpper(addr), Reason: crm.ReasonUnsubscribed})
	ok, reason, err := f.store.IsSuppressed(f.ctx, addr)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, crm.ReasonUnsubscribed, reason)
	c, err := f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.False(t, c.Consent, "unsubscribing withdraws marketing consent")

	in := f.marketingSend(id, addr)
	stats := f.sender.Stats()
	res := f.mustSend(in)
	require.Equal(t, activities.SendSuppressed, res.Status, "result %+v", res)
	require.Equal(t, stats, f.sender.Stats(), "a suppressed send must not talk to SMTP")
	send, err := f.store.GetSend(f.ctx, in.Key)
	require.NoError(t, err)
	require.Equal(t, crm.SendSuppressed, send.Status)
	// Asked again (a retry), still suppressed.
	require.Equal(t, activities.SendSuppressed, f.mustSend(in).Status)

	// The owner is told about the lead.
	_, owner := newCustomer("owner")
	notice := f.handoffNotice(id, owner)
	res = f.mustSend(notice)
	require.Equal(t, activities.SendSent, res.Status, "result %+v", res)
	sum := f.waitForOne(owner)
	msg, err := f.mp.Message(f.ctx, sum.ID)
	require.NoError(t, err)
	require.Contains(t, msg.Subject, "Ada Lovelace")
	require.NotEmpty(t, msg.Text)
	require.NotEmpty(t, msg.HTML)
	require.Empty(t, msg.ListUnsubscribe.Header, "transactional mail has no unsubscribe link")
	send, err = f.store.GetSend(f.ctx, notice.Key)
	require.NoError(t, err)
	require.Equal(t, crm.CategoryTransactional, send.Category)

	// Unsubscribing stops marketing mail only: a transactional notice to
	// the customer's own address still goes.
	toCustomer := f.handoffNotice(id, addr)
	require.Equal(t, activities.SendSent, f.mustSend(toCustomer).Status)
	only := f.waitForOne(addr)
	require.Equal(t, strings.Trim(email.MessageIDFor(toCustomer.Key, fromAddress), "<>"), only.MessageID,
		"the one message to the customer is the transactional one")

	// A bounce stops all mail to the address.
	f.suppress(activities.SuppressInput{CustomerID: id, Email: addr, Reason: crm.ReasonBounced})
	bounced := f.handoffNotice(id, addr)
	bounced.Key += "/after-bounce"
	require.Equal(t, activities.SendSuppressed, f.mustSend(bounced).Status)
	require.Len(t, f.messagesTo(addr), 1)
}

// Bad input is rejected with a non-retryable error that says what is wrong,
// and nothing is sent.
func TestSendEmailBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	t.Run("unknown template", func(t *testing.T) {
		id, addr := newCustomer("notpl")
		in := f.marketingSend(id, addr)
		in.Template = "no_such_template"
		_, err := f.sendEmail(in)
		appErr := requireAppError(t, err, activities.ErrTemplate)
		require.Contains(t, appErr.Error(), "no_such_template")
		_, gerr := f.store.GetSend(f.ctx, in.Key)
		require.ErrorIs(t, gerr, crm.ErrNotFound, "nothing claimed")
		f.requireNoMail(addr)
	})

	t.Run("template data missing", func(t *testing.T) {
		id, _ := newCustomer("noextra")
		_, owner := newCustomer("owner")
		in := f.handoffNotice(id, owner)
		in.Data.Extra = nil // the notice needs the customer's name, reasons...
		_, err := f.sendEmail(in)
		appErr := requireAppError(t, err, activities.ErrTemplate)
		require.Contains(t, appErr.Error(), in.Template)
		f.requireNoMail(owner)
	})

	t.Run("unknown campaign version is retryable", func(t *testing.T) {
		// A rolling deploy: a worker that has the version will send it.
		id, addr := newCustomer("nocamp")
		in := f.marketingSend(id, addr)
		in.CampaignVersion = "v999"
		_, err := f.sendEmail(in)
		requireRetryable(t, err)
		require.Contains(t, err.Error(), "v999")
		f.requireNoMail(addr)
	})

	t.Run("invalid address", func(t *testing.T) {
		id, _ := newCustomer("badaddr")
		in := f.marketingSend(id, "not an address")
		_, err := f.sendEmail(in)
		requireAppError(t, err, activities.ErrBadInput)
		_, gerr := f.store.GetSend(f.ctx, in.Key)
		require.ErrorIs(t, gerr, crm.ErrNotFound, "nothing claimed")
	})

	t.Run("send key of another customer", func(t *testing.T) {
		id, addr := newCustomer("keyowner")
		in := f.marketingSend(id, addr)
		require.Equal(t, activities.SendSent, f.mustSend(in).Status)
		thief, thiefAddr := newCustomer("keythief")
		in.CustomerID, in.To = thief, thiefAddr
		_, err := f.sendEmail(in)
		requireAppError(t, err, activities.ErrBadInput)
		f.requireNoMail(thiefAddr)
	})

	// A line break in the recipient's name could inject a header (a Bcc).
	// The sender refuses the message before it talks to the server: the
	// send fails permanently (recorded, not retried) and nothing arrives.
	t.Run("CR LF in recipient name", func(t *testing.T) {
		id, addr := newCustomer("crlf")
		_, injected := newCustomer("injected")
		in := f.marketingSend(id, addr)
		in.ToName = "Ada\r\nBcc: " + injected
		stats := f.sender.Stats()
		res, err := f.sendEmail(in)
		require.NoError(t, err)
		require.Equal(t, activities.SendFailed, res.Status, "result %+v", res)
		require.Contains(t, res.Reason, "ToName")
		require.Equal(t, stats, f.sender.Stats(), "the message never reached SMTP")
		send, gerr := f.store.GetSend(f.ctx, in.Key)
		require.NoError(t, gerr)
		require.Equal(t, crm.SendFailed, send.Status)
		require.True(t, send.Permanent)
		again, err := f.sendEmail(in)
		require.NoError(t, err)
		require.Equal(t, activities.SendFailed, again.Status)
		f.requireNoMail(addr)
		f.requireNoMail(injected)
	})

	// A line break in a template value would end up in the subject: the
	// rendering refuses it.
	t.Run("CR LF in subject data", func(t *testing.T) {
		id, addr := newCustomer("crlfsubj")
		_, injected := newCustomer("injected")
		in := f.marketingSend(id, addr)
		tpl := f.camp.Templates[in.Template]
		require.Contains(t, tpl.Subject, ".FirstName", "this case needs a subject that uses the first name")
		in.Data.FirstName = "Ada\r\nBcc: " + injected
		_, err := f.sendEmail(in)
		requireAppError(t, err, activities.ErrTemplate)
		f.requireNoMail(addr)
		f.requireNoMail(injected)
	})
}

// The email counters move with the outcomes.
func TestEmailMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	f.acts.Metrics = activities.NewMetrics(reg)
	emails := func(outcome string) float64 {
		return counterValue(t, reg, "lifecycle_emails_total", map[string]string{"outcome": outcome})
	}
	crmWrites := func(op, result string) float64 {
		return counterValue(t, reg, "lifecycle_crm_writes_total", map[string]string{"op": op, "result": result})
	}

	id, addr := newCustomer("metrics")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))
	require.Equal(t, 1.0, crmWrites("upsert_contact", "ok"))

	in := f.marketingSend(id, addr)
	require.Equal(t, activities.SendSent, f.mustSend(in).Status)
	require.Equal(t, 1.0, emails("sent"))
	require.Equal(t, 0.0, emails("duplicate"))

	require.Equal(t, activities.SendDuplicate, f.mustSend(in).Status)
	require.Equal(t, activities.SendDuplicate, f.mustSend(in).Status)
	require.Equal(t, 1.0, emails("sent"))
	require.Equal(t, 2.0, emails("duplicate"))

	id2, addr2 := newCustomer("metrics-unsub")
	f.suppress(activities.SuppressInput{CustomerID: id2, Email: addr2, Reason: crm.ReasonUnsubscribed})
	require.Equal(t, 1.0, crmWrites("suppress", "ok"))
	require.Equal(t, activities.SendSuppressed, f.mustSend(f.marketingSend(id2, addr2)).Status)
	require.Equal(t, 1.0, emails("suppressed"))
	require.Equal(t, 0.0, emails("failed"))

	id3, addr3 := newCustomer("metrics-fail")
	bad := f.marketingSend(id3, addr3)
	bad.ToName = "Ada\nBcc: x@example.test"
	require.Equal(t, activities.SendFailed, f.mustSend(bad).Status)
	require.Equal(t, 1.0, emails("failed"))

	require.Equal(t, 1.0, emails("sent"), "nothing else was sent")
	require.Equal(t, 4, seriesCount(t, reg, "lifecycle_emails_total"), "sent, duplicate, suppressed, failed")
}
