package email_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/email/mailpit/mailpittest"
	"github.com/acme/lifecycle/internal/testenv"
)

const (
	testFrom     = "hello@lifecycle.example"
	testFromName = "Lifecycle Tests"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSender(t testing.TB, smtpAddr string, mod func(*email.Config)) *email.Sender {
	t.Helper()
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg := email.Config{
		Host: host, Port: p, TLSMode: email.TLSNone,
		From: testFrom, FromName: testFromName,
		Connections: 2, Timeout: 10 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := email.NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// recipient returns an address no other test (or test run) uses.
func recipient(tag string) string {
	return tag + "-" + testenv.RandomID(8) + "@example.test"
}

func transactional(to, subject string) email.Message {
	return email.Message{
		MessageID: email.MessageIDFor("test/"+to+"/"+subject, testFrom),
		To:        to,
		Subject:   subject,
		Text:      "Hello in text.",
		HTML:      "<p>Hello in <b>HTML</b>.</p>",
		Category:  email.CategoryTransactional,
	}
}

func expectCount(t *testing.T, mp *mailpit.Client, query string, want int) []mailpit.Summary {
	t.Helper()
	found, err := mp.Search(testCtx(t), query)
	if err != nil {
		t.Fatalf("search %q: %v", query, err)
	}
	if len(found) != want {
		t.Fatalf("search %q: %d messages, want %d", query, len(found), want)
	}
	return found
}

func TestSendArrivesWithHeadersAndParts(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := newSender(t, smtpAddr, nil)
	ctx := testCtx(t)

	to := recipient("arrive")
	signer := email.NewSigner([]byte("test-secret"))
	unsub := signer.UnsubscribeURL("http://127.0.0.1:8080", "cust 42/ü")
	msgID := email.MessageIDFor("journey/cust-42/step-3/"+to, s.From())
	m := email.Message{
		MessageID:      msgID,
		To:             to,
		ToName:         `Doe, Jane "JJ" Ünicode`,
		Subject:        "Welcome aboard — your trial starts now",
		Text:           "Hi Jane,\nyour trial has started.\n",
		HTML:           "<p>Hi Jane,</p><p>your trial has <b>started</b>.</p>",
		UnsubscribeURL: unsub,
		Category:       email.CategoryMarketing,
		Headers:        map[string]string{"X-Journey-Step": "trial/welcome", "X-Campaign-Version": "7"},
	}
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	found := expectCount(t, mp, "to:"+to, 1)
	got, err := mp.Message(ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.To) != 1 || got.To[0].Address != to || got.To[0].Name != m.ToName {
		t.Errorf("To = %+v, want %q <%s>", got.To, m.ToName, to)
	}
	if got.From.Address != testFrom || got.From.Name != testFromName {
		t.Errorf("From = %+v", got.From)
	}
	if got.Subject != m.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, m.Subject)
	}
	if !strings.Contains(got.Text, "your trial has started.") {
		t.Errorf("Text part = %q", got.Text)
	}
	if !strings.Contains(got.HTML, "<b>started</b>") {
		t.Errorf("HTML part = %q", got.HTML)
	}
	if want := strings.Trim(msgID, "<>"); got.MessageID != want {
		t.Errorf("MessageID = %q, want %q", got.MessageID, want)
	}
	if got.ListUnsubscribe.Errors != "" {
		t.Errorf("Mailpit finds the List-Unsubscribe header faulty: %s", got.ListUnsubscribe.Errors)
	}
	if len(got.ListUnsubscribe.Links) != 1 || got.ListUnsubscribe.Links[0] != unsub {
		t.Errorf("List-Unsubscribe links = %q, want [%q]", got.ListUnsubscribe.Links, unsub)
	}

	h, err := mp.Headers(ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header(h)
	for name, want := range map[string]string{
		"Message-ID":            msgID,
		"List-Unsubscribe":      "<" + unsub + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Journey-Step":        "trial/welcome",
		"X-Campaign-Version":    "7",
		"X-Lifecycle-Category":  "marketing",
	} {
		if got := hdr.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
	for _, name := range []string{"User-Agent", "X-Mailer"} {
		if v := hdr.Get(name); v != "" {
			t.Errorf("header %s = %q, want none", name, v)
		}
	}

	n, err := mp.CountByMessageID(ctx, msgID)
	if err != nil || n != 1 {
		t.Errorf("CountByMessageID = %d, %v; want 1", n, err)
	}
}

func TestTransactionalWithoutUnsubscribeHasNoListHeaders(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := newSender(t, smtpAddr, nil)
	ctx := testCtx(t)

	to := recipient("txn")
	m := transactional(to, "Your receipt")
	m.HTML = "" // text only
	if err := s.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	found := expectCount(t, mp, "to:"+to, 1)
	h, err := mp.Headers(ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header(h)
	if v := hdr.Get("List-Unsubscribe"); v != "" {
		t.Errorf("List-Unsubscribe = %q on transactional mail without URL", v)
	}
	if v := hdr.Get("X-Lifecycle-Category"); v != "transactional" {
		t.Errorf("X-Lifecycle-Category = %q, want transactional", v)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
}

func TestConnectionsAreReused(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := newSender(t, smtpAddr, func(c *email.Config) { c.Connections = 2 })
	ctx := testCtx(t)

	tag := "reuse-" + testenv.RandomID(6)
	for i := range 50 {
		to := fmt.Sprintf("%s-%03d@example.test", tag, i)
		if err := s.Send(ctx, transactional(to, "Reuse "+strconv.Itoa(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// Sequential sends stay on the warm connection.
	if st := s.Stats(); st.Dials != 1 {
		t.Errorf("50 sequential sends dialled %d times, want 1", st.Dials)
	}

	// Concurrent senders share the two connections.
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Go(func() {
			for i := range 10 {
				to := fmt.Sprintf("%s-%d%02d@example.test", tag, g+1, i)
				if err := s.Send(ctx, transactional(to, "Reuse concurrently")); err != nil {
					t.Errorf("concurrent send %d/%d: %v", g, i, err)
				}
			}
		})
	}
	wg.Wait()

	st := s.Stats()
	if st.Dials > 2 {
		t.Errorf("100 sends over 2 connections dialled %d times, want at most 2", st.Dials)
	}
	if st.Sent != 100 || st.Failed != 0 || st.Redials != 0 {
		t.Errorf("Stats = %+v, want 100 sent, no failure, no redial", st)
	}
	if st.Open < 1 || st.Open > 2 {
		t.Errorf("Stats.Open = %d, want 1 or 2", st.Open)
	}
	expectCount(t, mp, "to:"+tag+"-", 100)

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := s.Stats(); st.Open != 0 {
		t.Errorf("after Close, Stats.Open = %d", st.Open)
	}
	if err := s.Send(ctx, transactional(recipient("closed"), "x")); !errors.Is(err, email.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestConcurrentSendsAllArrive(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := newSender(t, smtpAddr, func(c *email.Config) { c.Connections = 4 })
	ctx := testCtx(t)

	const n = 60
	tag := "conc-" + testenv.RandomID(6)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			to := fmt.Sprintf("%s-%02d@example.test", tag, i)
			if err := s.Send(ctx, transactional(to, "Concurrent "+strconv.Itoa(i))); err != nil {
				errs <- fmt.Errorf("send %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	found := expectCount(t, mp, "to:"+tag+"-", n)
	seen := map[string]bool{}
	for _, m := range found {
		seen[m.To[0].Address] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct recipients, want %d", len(seen), n)
	}
	if st := s.Stats(); st.Dials > 4 || st.Sent != n {
		t.Errorf("Stats = %+v, want at most 4 dials and %d sent", st, n)
	}
}

func TestHeaderInjectionIsRejectedAndNothingSent(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := newSender(t, smtpAddr, nil)
	ctx := testCtx(t)

	to := recipient("inject")
	cases := []struct {
		field  string
		mutate func(*email.Message)
	}{
		{"Subject", func(m *email.Message) { m.Subject = "Hello\r\nBcc: victim@example.test" }},
		{"Subject", func(m *email.Message) { m.Subject = "Hello\nX-Evil: 1" }},
		{"ToName", func(m *email.Message) { m.ToName = "Jane\r\nBcc: victim@example.test" }},
		{"To", func(m *email.Message) { m.To = to + "\r\nBcc: victim@example.test" }},
		{"Headers[X-Journey-Step]", func(m *email.Message) {
			m.Headers = map[string]string{"X-Journey-Step": "a\r\nBcc: victim@example.test"}
		}},
		{"Headers[X-Bad\r\nBcc]", func(m *email.Message) { m.Headers = map[string]string{"X-Bad\r\nBcc": "v"} }},
		{"Headers[Bcc]", func(m *email.Message) { m.Headers = map[string]string{"Bcc": "victim@example.test"} }},
		{"MessageID", func(m *email.Message) { m.MessageID = "<a@b>\r\nBcc: victim@example.test" }},
		{"UnsubscribeURL", func(m *email.Message) {
			m.Category = email.CategoryMarketing
			m.UnsubscribeURL = "https://x.example/u\r\nBcc: victim@example.test"
		}},
	}
	for _, tc := range cases {
		m := transactional(to, "Injection")
		tc.mutate(&m)
		err := s.Send(ctx, m)
		if err == nil {
			t.Errorf("%s: Send accepted an injection attempt", tc.field)
			continue
		}
		var pe *email.PermanentError
		if !errors.As(err, &pe) || pe.Field != tc.field || !errors.Is(err, email.ErrInvalidMessage) {
			t.Errorf("%s: error %v (%#v), want a PermanentError for field %s", tc.field, err, pe, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
	}
	if st := s.Stats(); st.Dials != 0 || st.Sent != 0 {
		t.Errorf("rejected messages talked to the server: %+v", st)
	}
	expectCount(t, mp, "to:"+to, 0)
	expectCount(t, mp, "to:victim@example.test subject:Injection", 0)
}

func TestInvalidMessagesArePermanent(t *testing.T) {
	// No server needed: nothing is sent, the pool is never dialled.
	s, err := email.NewSender(email.Config{Host: "127.0.0.1", Port: 9, TLSMode: email.TLSNone, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	cases := []struct {
		field  string
		mutate func(*email.Message)
	}{
		{"To", func(m *email.Message) { m.To = "" }},
		{"To", func(m *email.Message) { m.To = "not-an-address" }},
		{"To", func(m *email.Message) { m.To = "jane@" }},
		{"To", func(m *email.Message) { m.To = "Jane <jane@example.test>" }},
		{"To", func(m *email.Message) { m.To = "a@example.test, b@example.test" }},
		{"Subject", func(m *email.Message) { m.Subject = "  " }},
		{"MessageID", func(m *email.Message) { m.MessageID = "" }},
		{"MessageID", func(m *email.Message) { m.MessageID = "no-at-sign" }},
		{"MessageID", func(m *email.Message) { m.MessageID = "<a b@c>" }},
		{"Category", func(m *email.Message) { m.Category = "" }},
		{"UnsubscribeURL", func(m *email.Message) { m.Category = email.CategoryMarketing }},
		{"UnsubscribeURL", func(m *email.Message) {
			m.Category, m.UnsubscribeURL = email.CategoryMarketing, "mailto:unsub@example.test"
		}},
		{"Text", func(m *email.Message) { m.Text, m.HTML = "", "" }},
		{"Headers[Reply-To]", func(m *email.Message) { m.Headers = map[string]string{"Reply-To": "x@example.test"} }},
		{"Headers[X-Bad Name]", func(m *email.Message) { m.Headers = map[string]string{"X-Bad Name": "v"} }},
		{"Headers[X-Nul]", func(m *email.Message) { m.Headers = map[string]string{"X-Nul": "a\x00b"} }},
	}
	for _, tc := range cases {
		m := transactional("jane@example.test", "Hello")
		tc.mutate(&m)
		err := s.Send(ctx, m)
		var pe *email.PermanentError
		if !errors.As(err, &pe) || pe.Field != tc.field || !email.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want a PermanentError for field %s", tc.field, err, tc.field)
			continue
		}
		t.Logf("%s: %v", tc.field, err)
	}
	if st := s.Stats(); st.Dials != 0 {
		t.Errorf("invalid messages dialled the server: %+v", st)
	}
}

func TestNewSenderValidatesConfig(t *testing.T) {
	good := email.Config{Host: "127.0.0.1", Port: 1025, TLSMode: email.TLSNone, From: testFrom}
	cases := map[string]func(*email.Config){
		"empty host":        func(c *email.Config) { c.Host = "" },
		"bad port":          func(c *email.Config) { c.Port = 70000 },
		"unknown TLS mode":  func(c *email.Config) { c.TLSMode = "ssl" },
		"empty TLS mode":    func(c *email.Config) { c.TLSMode = "" },
		"bad From":          func(c *email.Config) { c.From = "nobody" },
		"From with name":    func(c *email.Config) { c.From = "Team <team@example.test>" },
		"FromName with LF":  func(c *email.Config) { c.FromName = "Team\nBcc: x@example.test" },
		"negative conns":    func(c *email.Config) { c.Connections = -1 },
		"negative timeout":  func(c *email.Config) { c.Timeout = -time.Second },
		"password, no user": func(c *email.Config) { c.Password = "secret" },
	}
	for name, mutate := range cases {
		cfg := good
		mutate(&cfg)
		if _, err := email.NewSender(cfg); !errors.Is(err, email.ErrInvalidConfig) {
			t.Errorf("%s: NewSender error = %v, want ErrInvalidConfig", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for _, mode := range []string{email.TLSNone, email.TLSOpportunistic, email.TLSStartTLS, email.TLSImplicit} {
		cfg := good
		cfg.TLSMode, cfg.Port = mode, 0
		s, err := email.NewSender(cfg)
		if err != nil {
			t.Errorf("TLSMode %s: %v", mode, err)
			continue
		}
		_ = s.Close()
	}
}

func TestRefusedRecipientIsPermanent(t *testing.T) {
	mp := mailpittest.Start(t, "--smtp-allowed-recipients", `@allowed\.test$`)
	s := newSender(t, mp.SMTPAddr(), func(c *email.Config) { c.Connections = 1 })
	api := mailpit.New(mp.APIURL())
	ctx := testCtx(t)

	err := s.Send(ctx, transactional("nobody@refused.test", "Refused"))
	if err == nil {
		t.Fatal("send to a refused recipient succeeded")
	}
	t.Logf("refused recipient: %v", err)
	var pe *email.PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a PermanentError", err)
	}
	if pe.Code != 550 || !strings.HasPrefix(pe.EnhancedCode, "5.") {
		t.Errorf("PermanentError code %d / %q, want 550 / 5.x.x", pe.Code, pe.EnhancedCode)
	}
	if !email.IsHardBounce(err) {
		t.Errorf("a refused recipient is not reported as a hard bounce: %+v", pe)
	}

	// The connection survives a refused recipient (go-mail sends RSET).
	if err := s.Send(ctx, transactional("jane@allowed.test", "Allowed")); err != nil {
		t.Fatalf("send after a refusal: %v", err)
	}
	if st := s.Stats(); st.Dials != 1 || st.Sent != 1 || st.Failed != 1 {
		t.Errorf("Stats = %+v, want 1 dial, 1 sent, 1 failed", st)
	}
	expectCount(t, api, "to:jane@allowed.test", 1)
	expectCount(t, api, "to:nobody@refused.test", 0)
}

func TestTemporaryFailureIsRetryable(t *testing.T) {
	mp := mailpittest.Start(t, "--chaos-triggers", "Recipient:451:100")
	s := newSender(t, mp.SMTPAddr(), nil)

	err := s.Send(testCtx(t), transactional(recipient("chaos"), "Try later"))
	if err == nil {
		t.Fatal("send succeeded despite a 451 on every recipient")
	}
	t.Logf("451: %v", err)
	if email.IsPermanent(err) {
		t.Errorf("a 4xx reply is classified permanent: %v", err)
	}
	if !strings.Contains(err.Error(), "451") {
		t.Errorf("error %q does not carry the SMTP reply", err)
	}
}

func TestRedialAfterServerRestart(t *testing.T) {
	mp := mailpittest.Start(t)
	s := newSender(t, mp.SMTPAddr(), func(c *email.Config) { c.Connections = 1 })
	ctx := testCtx(t)

	if err := s.Send(ctx, transactional(recipient("before"), "Before restart")); err != nil {
		t.Fatal(err)
	}
	mp.Restart()

	to := recipient("after")
	if err := s.Send(ctx, transactional(to, "After restart")); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	st := s.Stats()
	if st.Dials != 2 || st.Redials != 1 || st.Sent != 2 || st.Failed != 0 {
		t.Errorf("Stats = %+v, want 2 dials, 1 redial, 2 sent", st)
	}
	expectCount(t, mailpit.New(mp.APIURL()), "to:"+to, 1)

	// While the server is down, sends fail with a retryable error...
	mp.Stop()
	err := s.Send(ctx, transactional(recipient("down"), "Server down"))
	if err == nil || email.IsPermanent(err) {
		t.Fatalf("send to a stopped server = %v, want a retryable error", err)
	}
	t.Logf("server down: %v", err)
	// ...and work again once it is back.
	mp.Resume()
	if err := s.Send(ctx, transactional(recipient("back"), "Server back")); err != nil {
		t.Fatalf("send after the server came back: %v", err)
	}
}

func TestCancelledContextIsRetryable(t *testing.T) {
	s, err := email.NewSender(email.Config{Host: "127.0.0.1", Port: 9, TLSMode: email.TLSNone, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.Send(ctx, transactional("jane@example.test", "Cancelled"))
	if !errors.Is(err, context.Canceled) || email.IsPermanent(err) {
		t.Errorf("Send with a cancelled context = %v, want retryable context.Canceled", err)
	}
}

func TestSMTPAuth(t *testing.T) {
	// With a password file Mailpit requires AUTH (PLAIN/LOGIN, allowed in
	// clear text here because the server is on localhost).
	authFile := filepath.Join(t.TempDir(), "smtp-auth")
	if err := os.WriteFile(authFile, []byte("worker:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := mailpittest.Start(t, "--smtp-auth-file", authFile, "--smtp-auth-allow-insecure")
	api := mailpit.New(mp.APIURL())
	ctx := testCtx(t)

	good := newSender(t, mp.SMTPAddr(), func(c *email.Config) { c.Username, c.Password = "worker", "s3cret" })
	to := recipient("auth")
	if err := good.Send(ctx, transactional(to, "Authenticated")); err != nil {
		t.Fatalf("send with the right credentials: %v", err)
	}
	expectCount(t, api, "to:"+to, 1)

	for name, mod := range map[string]func(*email.Config){
		"wrong password": func(c *email.Config) { c.Username, c.Password = "worker", "wrong" },
		"no credentials": nil,
	} {
		bad := newSender(t, mp.SMTPAddr(), mod)
		to := recipient("noauth")
		err := bad.Send(ctx, transactional(to, "Not authenticated"))
		if err == nil {
			t.Errorf("%s: send succeeded", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if email.IsPermanent(err) {
			t.Errorf("%s: credential problems are classified permanent; mail would be dropped until the config is fixed", name)
		}
		expectCount(t, api, "to:"+to, 0)
	}
}

func BenchmarkSendMailpit(b *testing.B) {
	smtpAddr, _ := testenv.Mailpit(b)
	for _, conns := range []int{1, 4} {
		b.Run("connections="+strconv.Itoa(conns), func(b *testing.B) {
			s := newSender(b, smtpAddr, func(c *email.Config) { c.Connections = conns })
			ctx := context.Background()
			tag := "bench-" + testenv.RandomID(6)
			var seq sync.Mutex
			i := 0
			next := func() int {
				seq.Lock()
				defer seq.Unlock()
				i++
				return i
			}
			b.SetParallelism(conns)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := next()
					m := transactional(fmt.Sprintf("%s-%d@example.test", tag, n), "Bench "+strconv.Itoa(n))
					if err := s.Send(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(s.Stats().Dials), "dials")
		})
	}
}

// A server that accepts connections and never answers (a black hole, as
// behind a broken firewall): sends must time out with retryable errors,
// and a context deadline must abort them early.
func TestUnresponsiveServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()

	// The Sender's own timeout.
	s := newSender(t, l.Addr().String(), func(c *email.Config) { c.Timeout = 300 * time.Millisecond; c.Connections = 1 })
	start := time.Now()
	err = s.Send(context.Background(), transactional("jane@example.test", "Black hole"))
	if err == nil || email.IsPermanent(err) {
		t.Fatalf("Send = %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", d)
	}
	t.Logf("timeout: %v", err)

	// The caller's deadline, shorter than the Sender's timeout.
	s = newSender(t, l.Addr().String(), func(c *email.Config) { c.Timeout = time.Minute; c.Connections = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.Send(ctx, transactional("jane@example.test", "Black hole"))
	if !errors.Is(err, context.DeadlineExceeded) || email.IsPermanent(err) {
		t.Fatalf("Send = %v, want a retryable context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %s with a 300ms context deadline", d)
	}
	if st := s.Stats(); st.Open != 0 {
		t.Errorf("aborted connection still counted open: %+v", st)
	}

	// Waiting for a busy pool honours the context too.
	busy := make(chan error, 1)
	go func() { busy <- s.Send(context.Background(), transactional("jane@example.test", "Holds the slot")) }()
	time.Sleep(100 * time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	err = s.Send(ctx2, transactional("joe@example.test", "Waits"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for an SMTP connection") {
		t.Errorf("Send on a busy pool = %v, want a deadline while waiting for a connection", err)
	}
	// Unblock the first send by closing the black hole's connections.
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	if err := <-busy; err == nil || email.IsPermanent(err) {
		t.Errorf("send on a dropped connection = %v, want a retryable error", err)
	}
}

func TestRefusedSenderIsPermanentButNoBounce(t *testing.T) {
	mp := mailpittest.Start(t, "--chaos-triggers", "Sender:550:100")
	s := newSender(t, mp.SMTPAddr(), nil)

	err := s.Send(testCtx(t), transactional(recipient("sender"), "Refused sender"))
	if !email.IsPermanent(err) {
		t.Fatalf("a 550 to MAIL FROM is not permanent: %v", err)
	}
	if email.IsHardBounce(err) {
		t.Errorf("a refused sender is reported as a hard bounce of the recipient: %v", err)
	}
}

// BeforeEnd runs once per send, after the server took the envelope and
// before the end of the data: a refused recipient never reaches it, and an
// error from it aborts the send with nothing delivered.
func TestBeforeEndRunsBeforeTheServerAccepts(t *testing.T) {
	mp := mailpittest.Start(t, "--smtp-allowed-recipients", `@allowed\.test$`)
	s := newSender(t, mp.SMTPAddr(), func(c *email.Config) { c.Connections = 1 })
	api := mailpit.New(mp.APIURL())
	ctx := testCtx(t)

	calls := 0
	m := transactional("ada@allowed.test", "Hooked")
	m.BeforeEnd = func() error {
		calls++
		// Nothing is accepted before the hook returns.
		if found, err := api.Search(ctx, "to:ada@allowed.test"); err != nil || len(found) != 0 {
			t.Errorf("the message was accepted before BeforeEnd returned (%d found, %v)", len(found), err)
		}
		return nil
	}
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("send: %v", err)
	}
	if calls != 1 {
		t.Errorf("BeforeEnd ran %d times, want once", calls)
	}
	expectCount(t, api, "to:ada@allowed.test", 1)

	refused := transactional("nobody@refused.test", "Refused")
	refused.BeforeEnd = func() error { t.Error("BeforeEnd ran for a refused recipient"); return nil }
	if err := s.Send(ctx, refused); !email.IsHardBounce(err) {
		t.Errorf("refused recipient: %v, want a hard bounce", err)
	}

	aborted := transactional("bob@allowed.test", "Aborted")
	aborted.BeforeEnd = func() error { return context.Canceled }
	err := s.Send(ctx, aborted)
	if err == nil || email.IsPermanent(err) {
		t.Fatalf("aborted send: %v, want a retryable error", err)
	}
	expectCount(t, api, "to:bob@allowed.test", 0)
	if err := s.Send(ctx, transactional("bob@allowed.test", "After the abort")); err != nil {
		t.Fatalf("send after an aborted one: %v", err)
	}
	expectCount(t, api, "to:bob@allowed.test", 1)
}
