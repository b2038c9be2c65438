package mailpit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

const from = "tests@lifecycle.example"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sender(t *testing.T, smtpAddr string) *email.Sender {
	t.Helper()
	host, port, _ := net.SplitHostPort(smtpAddr)
	p, _ := strconv.Atoi(port)
	s, err := email.NewSender(email.Config{Host: host, Port: p, TLSMode: email.TLSNone, From: from, Connections: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func msg(to, subject, messageID string) email.Message {
	return email.Message{
		MessageID: messageID,
		To:        to,
		ToName:    "Test Person",
		Subject:   subject,
		Text:      "text body of " + subject,
		HTML:      "<p>html body of " + subject + "</p>",
		Category:  email.CategoryTransactional,
		Headers:   map[string]string{"X-Journey-Step": "test/step"},
	}
}

func TestMessageAndHeaders(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL + "/") // a trailing slash is fine
	ctx := testCtx(t)

	to := "mp-msg-" + testenv.RandomID(8) + "@example.test"
	id := email.MessageIDFor(to, from)
	if err := sender(t, smtpAddr).Send(ctx, msg(to, "Client test", id)); err != nil {
		t.Fatal(err)
	}
	found, err := mp.Search(ctx, "to:"+to)
	if err != nil || len(found) != 1 {
		t.Fatalf("Search = %d results, %v; want 1", len(found), err)
	}
	sum := found[0]
	if sum.MessageID != strings.Trim(id, "<>") || sum.Subject != "Client test" || sum.From.Address != from ||
		len(sum.To) != 1 || sum.To[0].Address != to || sum.Created.IsZero() {
		t.Errorf("summary = %+v", sum)
	}

	m, err := mp.Message(ctx, sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != sum.ID || m.MessageID != sum.MessageID || m.Subject != "Client test" ||
		m.From.Address != from || len(m.To) != 1 || m.To[0].Name != "Test Person" ||
		!strings.Contains(m.Text, "text body of Client test") || !strings.Contains(m.HTML, "<p>html body of Client test</p>") {
		t.Errorf("message = %+v", m)
	}

	h, err := mp.Headers(ctx, sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := h["Message-Id"]; len(got) != 1 || got[0] != id {
		t.Errorf(`h["Message-Id"] = %q, want [%q]`, got, id)
	}
	if got := http.Header(h).Get("x-journey-step"); got != "test/step" {
		t.Errorf("X-Journey-Step = %q", got)
	}

	if _, err := mp.Message(ctx, "no-such-id"); !errors.Is(err, mailpit.ErrNotFound) {
		t.Errorf("Message(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := mp.Headers(ctx, "no-such-id"); !errors.Is(err, mailpit.ErrNotFound) {
		t.Errorf("Headers(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := mp.Search(ctx, "  "); err == nil {
		t.Error("Search with an empty query succeeded")
	}
	if n, err := mp.Total(ctx); err != nil || n < 1 {
		t.Errorf("Total = %d, %v", n, err)
	}
}

func TestCountByMessageIDIsExact(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	s := sender(t, smtpAddr)
	ctx := testCtx(t)

	// Mailpit's message-id: search matches substrings; the ID of the
	// second message contains the first.
	key := testenv.RandomID(8)
	short := "<" + key + "@example.test>"
	long := "<" + key + "@example.test.extra>"
	for i, id := range []string{short, long} {
		to := fmt.Sprintf("mp-count-%s-%d@example.test", key, i)
		if err := s.Send(ctx, msg(to, "Count", id)); err != nil {
			t.Fatal(err)
		}
	}
	found, err := mp.Search(ctx, "message-id:"+key)
	if err != nil || len(found) != 2 {
		t.Fatalf("Search message-id = %d, %v; want 2", len(found), err)
	}
	for _, id := range []string{short, long, strings.Trim(short, "<>")} {
		if n, err := mp.CountByMessageID(ctx, id); err != nil || n != 1 {
			t.Errorf("CountByMessageID(%s) = %d, %v; want 1", id, n, err)
		}
	}
	if n, err := mp.CountByMessageID(ctx, "<"+testenv.RandomID(8)+"@example.test>"); err != nil || n != 0 {
		t.Errorf("CountByMessageID(unknown) = %d, %v; want 0", n, err)
	}
}

func TestWaitFor(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	mp := mailpit.New(apiURL)
	ctx := testCtx(t)

	to := "mp-wait-" + testenv.RandomID(8) + "@example.test"
	s := sender(t, smtpAddr)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = s.Send(context.Background(), msg(to, "Later", email.MessageIDFor(to, from)))
	}()
	found, err := mp.WaitFor(ctx, "to:"+to, 1)
	if err != nil || len(found) != 1 {
		t.Fatalf("WaitFor = %d, %v; want 1", len(found), err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	found, err = mp.WaitFor(short, "to:"+to, 2)
	if !errors.Is(err, context.DeadlineExceeded) || len(found) != 1 {
		t.Errorf("WaitFor(2) = %d, %v; want 1 and a deadline error", len(found), err)
	}
}

// Pagination, Total and DeleteAll run on a private server: they need an
// exact mailbox and must not disturb the shared one.
func TestSearchPaginatesTotalDeleteAll(t *testing.T) {
	srv := mailpittest.Start(t)
	mp := mailpit.New(srv.APIURL())
	s := sender(t, srv.SMTPAddr())
	ctx := testCtx(t)

	const n = 450 // more than two pages
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			to := fmt.Sprintf("page-%03d@example.test", i)
			if err := s.Send(ctx, msg(to, "Page "+strconv.Itoa(i), email.MessageIDFor(to, from))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	found, err := mp.Search(ctx, "to:page-")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range found {
		seen[m.To[0].Address] = true
	}
	if len(found) != n || len(seen) != n {
		t.Errorf("Search found %d messages (%d distinct), want %d", len(found), len(seen), n)
	}
	if total, err := mp.Total(ctx); err != nil || total != n {
		t.Errorf("Total = %d, %v; want %d", total, err, n)
	}

	if err := mp.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if total, err := mp.Total(ctx); err != nil || total != 0 {
		t.Errorf("after DeleteAll, Total = %d, %v; want 0", total, err)
	}
}
