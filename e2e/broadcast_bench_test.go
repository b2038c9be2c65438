package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/workerapp"
	"github.com/acme/lifecycle/workflows"
)

// BenchmarkBroadcast measures a broadcast to 10,000 recipients on the real
// stack (Temporal dev server, PostgreSQL, in-process worker), start to
// done, in emails per second:
//
//   - mailpit: into the stack's Mailpit; every recipient's email is then
//     checked in Mailpit (exactly once);
//   - null-sink: into an SMTP server in this process that accepts and
//     counts, so the sender itself is measured, not Mailpit.
//
// Run it with
//
//	go test ./e2e/ -run '^$' -bench Broadcast -benchtime 1x
//
// BROADCAST_BENCH_RECIPIENTS, BROADCAST_BENCH_PAGE_SIZE and SMTP_CONNECTIONS
// change the size, the page size and the SMTP pool (default 10,000, 500
// and 4). It skips without the stack.
func BenchmarkBroadcast(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BROADCAST_BENCH_RECIPIENTS")); err == nil && v > 0 {
		n = v
	}
	conns := os.Getenv("SMTP_CONNECTIONS")
	if conns == "" {
		conns = "4"
	}
	b.Run("mailpit", func(b *testing.B) {
		benchBroadcast(b, n, map[string]string{"SMTP_CONNECTIONS": conns}, nil)
	})
	b.Run("null-sink", func(b *testing.B) {
		sink := startNullSink(b)
		host, port, _ := strings.Cut(sink.addr, ":")
		benchBroadcast(b, n, map[string]string{"SMTP_CONNECTIONS": conns, "SMTP_HOST": host, "SMTP_PORT": port}, sink)
	})
}

func benchBroadcast(b *testing.B, n int, env map[string]string, sink *nullSink) {
	s := newBroadcastStack(b, env)
	s.StartWorker(b)
	total := time.Duration(0)
	for i := range b.N {
		b.StopTimer()
		domain := fmt.Sprintf("bench-%s-%d.example", testenv.RandomID(3), i)
		// Fresh contacts per iteration (new IDs): the ledger starts empty
		// for them and Mailpit can be searched by domain.
		s.seedPrefixed(b, n, domain, fmt.Sprintf("b%d-", i))
		in := s.input("bench-" + testenv.RandomID(4))
		in.Segment.CustomerIDPrefix = fmt.Sprintf("b%d-", i)
		if v, err := strconv.Atoi(os.Getenv("BROADCAST_BENCH_PAGE_SIZE")); err == nil {
			in.PageSize = v
		}
		before := int64(0)
		if sink != nil {
			before = sink.count.Load()
		}
		b.StartTimer()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		started := time.Now()
		run, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
		require.NoError(b, err)
		var p workflows.BroadcastProgress
		require.NoError(b, run.Get(ctx, &p))
		elapsed := time.Since(started)
		cancel()

		b.StopTimer()
		total += elapsed
		require.Equal(b, n, p.Sent, "%+v", p)
		if sink != nil {
			require.EqualValues(b, n, sink.count.Load()-before)
		} else {
			// Mailpit stores a message before it answers the DATA
			// command: everything is there when the workflow is done.
			require.Equal(b, n, s.mailpitCount(b, domain))
			by := s.delivered(b, domain)
			require.Len(b, by, n)
			for addr, msgs := range by {
				require.Len(b, msgs, 1, addr)
			}
			s.deleteMail(b, domain)
		}
		b.Logf("%d emails in %s: %.0f emails/s (%d pages)", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), p.Pages)
		b.StartTimer()
	}
	rate := float64(n*b.N) / total.Seconds()
	b.StopTimer()
	// The limit in the same run: the same SMTP pool sending the same
	// message in a tight loop, no database, no Temporal.
	raw := s.rawRate(b, n)
	b.Logf("raw SMTP limit: %.0f emails/s; the broadcast reached %.2f of it", raw, rate/raw)
	b.ReportMetric(rate, "emails/s")
	b.ReportMetric(raw, "raw-emails/s")
	b.ReportMetric(rate/raw, "of-raw")
	b.ReportMetric(0, "ns/op")
}

// rawRate sends n copies of a rendered broadcast email over a Sender
// configured like the worker's, Connections at a time, and returns the
// messages per second.
func (s *broadcastStack) rawRate(tb testing.TB, n int) float64 {
	tb.Helper()
	reg, err := workerapp.LoadCampaigns("")
	require.NoError(tb, err)
	c, err := reg.Latest("saas-lifecycle")
	require.NoError(tb, err)
	data := campaign.SampleTemplateData(c)
	out, err := c.Render("holiday_new_year", data)
	require.NoError(tb, err)
	sender, err := email.NewSender(email.Config{Host: s.Cfg.SMTP.Host, Port: s.Cfg.SMTP.Port, TLSMode: s.Cfg.SMTP.TLSMode,
		From: s.Cfg.SMTP.From, FromName: s.Cfg.SMTP.FromName, Connections: s.Cfg.SMTP.Connections})
	require.NoError(tb, err)
	defer sender.Close()
	domain := "raw-" + testenv.RandomID(3) + ".example"
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range s.Cfg.SMTP.Connections {
		wg.Go(func() {
			for i := range jobs {
				err := sender.Send(context.Background(), email.Message{
					MessageID: email.MessageIDFor(fmt.Sprintf("raw/%s/%d", domain, i), s.Cfg.SMTP.From),
					To:        fmt.Sprintf("r%06d@%s", i, domain), ToName: "Kim", Subject: out.Subject, Text: out.Text, HTML: out.HTML,
					Category: email.CategoryMarketing, UnsubscribeURL: data.UnsubscribeURL,
				})
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	require.Zero(tb, failed.Load())
	s.deleteMail(tb, domain)
	return float64(n) / elapsed.Seconds()
}

// seedPrefixed is seed with customer IDs "<prefix>NNNNNN".
func (s *broadcastStack) seedPrefixed(tb testing.TB, n int, domain, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.store.Pool().Exec(ctx, `
INSERT INTO contacts (customer_id, email, first_name, last_name, company, consent, stage, score, time_zone, lead_source)
SELECT $1 || lpad(i::text, 6, '0'), 'r' || lpad(i::text, 6, '0') || '@' || $2, 'Kim', i::text, 'Example Corp',
    true, 'active', 10, 'UTC', 'referral'
FROM generate_series(0, $3 - 1) AS i`, prefix, domain, n)
	require.NoError(tb, err)
}

// mailpitCount asks Mailpit how many messages match to:domain.
func (s *broadcastStack) mailpitCount(tb testing.TB, domain string) int {
	tb.Helper()
	u := strings.TrimRight(os.Getenv("MAILPIT_API_URL"), "/")
	if u == "" {
		u = "http://127.0.0.1:8025"
	}
	resp, err := http.Get(u + "/api/v1/search?limit=1&query=" + url.QueryEscape("to:"+domain))
	require.NoError(tb, err)
	defer resp.Body.Close()
	var res struct {
		MessagesCount int `json:"messages_count"`
	}
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&res))
	return res.MessagesCount
}

// nullSink is an SMTP server that accepts every message and counts it.
type nullSink struct {
	addr  string
	count atomic.Int64
}

func startNullSink(tb testing.TB) *nullSink {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s := &nullSink{addr: l.Addr().String()}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *nullSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(line string) bool {
		_, err := w.WriteString(line + "\r\n")
		return err == nil && w.Flush() == nil
	}
	if !reply("220 null-sink ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			reply("250-null-sink\r\n250-8BITMIME\r\n250 SMTPUTF8")
		case strings.HasPrefix(cmd, "DATA"):
			reply("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
			}
			s.count.Add(1)
			reply("250 2.0.0 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			reply("221 bye")
			return
		default: // MAIL, RCPT, NOOP, RSET
			reply("250 ok")
		}
	}
}
