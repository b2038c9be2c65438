package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/workerapp"
)

// Names of the limits figures are compared with.
const (
	limitSMTPMailpit = "smtp-mailpit"
	limitSMTPNull    = "smtp-null"
	limitNoopWF      = "noop-workflow"
	limitPGInsert    = "pg-insert"
)

// limits measures, on the same stack and in the same run, what the parts
// can do alone: go-mail (email.Sender) into Mailpit and into a null sink,
// no-op workflows started and completed, single-row pgx inserts.
func (h *Harness) limits(ctx context.Context) error {
	var errs []error
	if n := h.cfg.SMTPRaw; n > 0 {
		m := begin()
		rate, err := h.rawSMTP(ctx, h.cfg.SMTPAddr, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("raw SMTP to Mailpit: %w", err))
		} else {
			h.results.limit(limitSMTPMailpit, rate)
			h.results.add(m.end(&Figure{Phase: "limits", Name: "raw SMTP: go-mail (email.Sender) → Mailpit", Value: rate, Unit: "msgs/s", N: n,
				Note:  fmt.Sprintf("%d connections reused, %d senders, a rendered holiday email (~6 KB)", h.cfg.SMTPConnections, h.cfg.SMTPConnections),
				Repro: fmt.Sprintf("lifecycle-bench -phases limits -smtp-raw %d", n)}))
		}
		sink, err := startNullSink()
		if err != nil {
			return err
		}
		m = begin()
		rate, err = h.rawSMTP(ctx, sink.Addr(), n)
		sink.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("raw SMTP to null sink: %w", err))
		} else {
			h.results.limit(limitSMTPNull, rate)
			h.results.add(m.end(&Figure{Phase: "limits", Name: "raw SMTP: go-mail (email.Sender) → null sink", Value: rate, Unit: "msgs/s", N: n,
				Note:  fmt.Sprintf("null sink counted %d", sink.count.Load()),
				Repro: fmt.Sprintf("lifecycle-bench -phases limits -smtp-raw %d", n)}))
		}
	}
	if n := h.cfg.NoopWF; n > 0 {
		m := begin()
		rate, err := h.noopWorkflows(ctx, n, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("no-op workflows: %w", err))
		} else {
			h.results.limit(limitNoopWF, rate)
			h.results.add(m.end(&Figure{Phase: "limits", Name: "no-op workflow start → complete (same dev server)", Value: rate, Unit: "wf/s", N: n,
				Note:  "ExecuteWorkflow + Get, 32 in flight, trivial workflow on its own task queue, in-process worker",
				Repro: fmt.Sprintf("lifecycle-bench -phases limits -noop %d", n)}))
		}
	}
	if customers, per := h.cfg.EventBatchCustomers, h.cfg.EventsPerCustomer; h.cfg.NoopWF > 0 && customers > 0 && per > 0 {
		// The events' limit, in the open-loop events run's shape (its
		// journeys × events each, round robin, 16 in flight); then the
		// same with a journey's per-task work added one piece at a time,
		// and with plain signals (what the API sends a running journey):
		// where an event's server time goes.
		n := customers * per
		shape := fmt.Sprintf("%d signals into %d waiting workflows, round robin, 16 in flight (the open-loop events run's shape: started and waiting before the clock starts)", n, customers)
		for _, work := range []string{"", "signal", "upsert", "la", "la+upsert"} {
			r, err := h.rawSignalWithStart(ctx, n, customers, work)
			if err != nil {
				errs = append(errs, fmt.Errorf("raw signal-with-start (%q): %w", work, err))
				continue
			}
			repro := fmt.Sprintf("lifecycle-bench -phases limits -event-batch-customers %d -events-per-customer %d", customers, per)
			if work == "" {
				h.results.limit(limitSWS, r.accepted)
				h.results.limit(limitSWSProcessed, r.processed)
				h.results.add(r.m.end(&Figure{Phase: "limits", Name: "raw signal-with-start, accepted (same dev server)", Value: r.accepted, Unit: "signals/s", N: n,
					Note: shape + "; each workflow only receives; rate = calls answered", Elapsed: r.elapsed, CPU: r.cpu, Repro: repro}))
				h.results.add(r.m.end(&Figure{Phase: "limits", Name: "raw signal-with-start, processed (same dev server)", Value: r.processed, Unit: "signals/s", N: n,
					Note:    shape + "; until the workflows have handled every signal (counted in their workflow tasks): the limit of the events figures, which count until applied",
					Elapsed: r.elapsed, CPU: r.cpu, Repro: repro}))
				continue
			}
			name := fmt.Sprintf("raw signal-with-start, processed, the workflow does %s per task (diagnostic)", workLabel(work))
			if work == "signal" {
				name = "raw plain signal (no start) into the same running workflows, processed (diagnostic)"
			}
			h.results.add(r.m.end(&Figure{Phase: "limits", Name: name,
				Value: r.processed, Unit: "signals/s", N: n, Limit: limitSWSProcessed, Elapsed: r.elapsed, CPU: r.cpu,
				Note: fmt.Sprintf("%s; accepted %.0f/s", shape, r.accepted), Repro: repro}))
		}
	}
	if n := h.cfg.PGInsert; n > 0 {
		m := begin()
		rate, err := h.pgInserts(ctx, n, 8)
		if err != nil {
			errs = append(errs, fmt.Errorf("pgx inserts: %w", err))
		} else {
			h.results.limit(limitPGInsert, rate)
			h.results.add(m.end(&Figure{Phase: "limits", Name: "pgx single-row INSERT (autocommit)", Value: rate, Unit: "rows/s", N: n,
				Note:  "8 connections, 8 in flight, scratch table with a text primary key",
				Repro: fmt.Sprintf("lifecycle-bench -phases limits -pg-inserts %d", n)}))
		}
	}
	return errors.Join(errs...)
}

func workLabel(work string) string {
	switch work {
	case "upsert":
		return "a search-attribute upsert"
	case "la":
		return "a local activity"
	default:
		return "a local activity and a search-attribute upsert"
	}
}

// rawSMTP sends n copies of a rendered campaign email over one Sender with
// the worker's pool size, pool-size senders at a time.
func (h *Harness) rawSMTP(ctx context.Context, addr string, n int) (float64, error) {
	reg, err := workerapp.LoadCampaigns("")
	if err != nil {
		return 0, err
	}
	c, err := reg.Latest("saas-lifecycle")
	if err != nil {
		return 0, err
	}
	data := campaign.SampleTemplateData(c)
	out, err := c.Render("holiday_new_year", data)
	if err != nil {
		return 0, err
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	from := "hello@lifecycle.example"
	sender, err := email.NewSender(email.Config{Host: host, Port: p, TLSMode: "none", From: from, FromName: "Bench", Connections: h.cfg.SMTPConnections})
	if err != nil {
		return 0, err
	}
	defer sender.Close()
	domain := "raw-" + randomID(3) + ".example"
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	for range h.cfg.SMTPConnections {
		wg.Go(func() {
			for i := range jobs {
				err := sender.Send(ctx, email.Message{
					MessageID: email.MessageIDFor(fmt.Sprintf("raw/%s/%d", domain, i), from),
					To:        fmt.Sprintf("r%06d@%s", i, domain), ToName: "Kim", Subject: out.Subject, Text: out.Text, HTML: out.HTML,
					Category: email.CategoryMarketing, UnsubscribeURL: data.UnsubscribeURL,
				})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
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
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d sends failed, first: %v", f, n, firstErr.Load())
	}
	return float64(n) / elapsed.Seconds(), nil
}

// Noop (workflow type BenchNoop) is the trivial workflow of the no-op
// limit.
func Noop(workflow.Context) error { return nil }

func (h *Harness) noopWorkflows(ctx context.Context, n, inFlight int) (float64, error) {
	tq := "bench-noop-" + h.id
	w := worker.New(h.c, tq, h.workerOptions())
	w.RegisterWorkflowWithOptions(Noop, workflow.RegisterOptions{Name: "BenchNoop"})
	if err := w.Start(); err != nil {
		return 0, err
	}
	defer w.Stop()
	run := func(i int) error {
		r, err := h.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-noop/%s/%d", h.id, i), TaskQueue: tq}, "BenchNoop")
		if err != nil {
			return err
		}
		return r.Get(ctx, nil)
	}
	// Warm up (task queue, poller, caches) outside the measurement.
	for i := range 5 {
		if err := run(-1 - i); err != nil {
			return 0, err
		}
	}
	return parallel(n, inFlight, run)
}

// parallel runs fn(0..n-1), inFlight at a time, and returns calls/s.
func parallel(n, inFlight int, fn func(i int) error) (float64, error) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for range inFlight {
		wg.Go(func() {
			for i := range jobs {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
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
	if len(errs) > 0 {
		return 0, fmt.Errorf("%d of %d failed, first: %w", len(errs), n, errs[0])
	}
	return float64(n) / elapsed.Seconds(), nil
}

func (h *Harness) pgInserts(ctx context.Context, n, conns int) (float64, error) {
	pc, err := pgxpool.ParseConfig(h.dbURL)
	if err != nil {
		return 0, err
	}
	pc.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_scratch (
		id text PRIMARY KEY, customer_id text NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, err
	}
	defer func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS bench_scratch`) }()
	run := "r" + randomID(3)
	return parallel(n, conns, func(i int) error {
		_, err := pool.Exec(ctx, `INSERT INTO bench_scratch (id, customer_id, payload) VALUES ($1, $2, $3)`,
			fmt.Sprintf("%s-%d", run, i), fmt.Sprintf("c-%d", i%1000), `{"type":"pricing_viewed","page":"/pricing"}`)
		return err
	})
}
