package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/lifecycle/workflows"
)

// broadcast measures a holiday greeting to N recipients start → done, into
// Mailpit (then checked: one message per recipient in Mailpit, one sent
// ledger row per recipient) and into the null sink (a second in-process
// worker whose SMTP points at it).
func (h *Harness) broadcast(ctx context.Context) error {
	n := h.cfg.Broadcast
	ms, err := h.main(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if err := h.broadcastOnce(ctx, ms.app.CRM.Pool(), ms.cfg.Temporal.TaskQueue, n, nil); err != nil {
		errs = append(errs, fmt.Errorf("into Mailpit: %w", err))
	}
	sink, err := startNullSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	cfg, _, err := h.workerConfig("bench-sink-"+h.id, h.dbURL, sink.Addr())
	if err != nil {
		return err
	}
	app, stop, err := h.startWorker(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer stop()
	if err := h.broadcastOnce(ctx, app.CRM.Pool(), cfg.Temporal.TaskQueue, n, sink); err != nil {
		errs = append(errs, fmt.Errorf("into the null sink: %w", err))
	}
	return errors.Join(errs...)
}

func (h *Harness) broadcastOnce(ctx context.Context, pool *pgxpool.Pool, taskQueue string, n int, sink *nullSink) error {
	tag := "mailpit"
	if sink != nil {
		tag = "null"
	}
	prefix := fmt.Sprintf("bc-%s-%s-", tag, h.id)
	domain := fmt.Sprintf("bc-%s-%s.example", tag, h.id)
	if _, err := pool.Exec(ctx, `
INSERT INTO contacts (customer_id, email, first_name, last_name, company, consent, stage, score, time_zone, lead_source)
SELECT $1 || lpad(i::text, 6, '0'), 'r' || lpad(i::text, 6, '0') || '@' || $2, 'Kim', i::text, 'Example Corp',
    true, 'active', 10, 'UTC', 'referral'
FROM generate_series(0, $3 - 1) AS i`, prefix, domain, n); err != nil {
		return fmt.Errorf("seed %d contacts: %w", n, err)
	}
	id := fmt.Sprintf("bench-%s-%s", tag, h.id)
	in := workflows.BroadcastInput{BroadcastID: id, CampaignID: "saas-lifecycle", Template: "holiday_new_year",
		Segment: workflows.BroadcastSegment{CustomerIDPrefix: prefix}}
	var before int64
	if sink != nil {
		before = sink.count.Load()
	}
	m := begin()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	run, err := workflows.StartBroadcast(rctx, h.c, taskQueue, in)
	if err != nil {
		return err
	}
	var p workflows.BroadcastProgress
	if err := run.Get(rctx, &p); err != nil {
		return err
	}
	elapsed := time.Since(m.t0)
	cpu := m.cpuNow() // before the verification below, which loads Mailpit
	var ledger int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM email_log WHERE status = 'sent' AND send_key LIKE $1`,
		"%/broadcast/"+id).Scan(&ledger); err != nil {
		return err
	}
	verified := ""
	if sink != nil {
		got := sink.count.Load() - before
		verified = fmt.Sprintf("null sink counted %d; ledger sent %d", got, ledger)
		if got != int64(n) || ledger != n {
			return fmt.Errorf("exactly-once check failed: %s, want %d", verified, n)
		}
	} else {
		vctx, vcancel := context.WithTimeout(ctx, 3*time.Minute)
		msgs, err := h.mp.Search(vctx, "to:"+domain)
		vcancel()
		if err != nil {
			return err
		}
		per := map[string]int{}
		for _, msg := range msgs {
			for _, to := range msg.To {
				per[to.Address]++
			}
		}
		dups := 0
		for _, c := range per {
			if c > 1 {
				dups++
			}
		}
		verified = fmt.Sprintf("Mailpit: %d messages, %d distinct recipients, %d recipients with more than one; ledger sent %d", len(msgs), len(per), dups, ledger)
		if len(msgs) != n || len(per) != n || dups != 0 || ledger != n {
			return fmt.Errorf("exactly-once check failed: %s, want %d", verified, n)
		}
	}
	limit := limitSMTPMailpit
	if sink != nil {
		limit = limitSMTPNull
	}
	h.results.add(m.end(&Figure{Phase: "broadcast", Name: "broadcast (holiday greeting) → " + map[bool]string{true: "null SMTP sink", false: "Mailpit"}[sink != nil],
		Value: float64(n) / elapsed.Seconds(), Unit: "emails/s", N: n, Elapsed: elapsed, CPU: cpu, Limit: limit,
		Note: fmt.Sprintf("start → workflow done, %d pages, SMTP pool %d; exactly once: %s (sent %d, duplicate %d, suppressed %d, failed %d, deferred %d)",
			p.Pages, h.cfg.SMTPConnections, verified, p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred),
		Repro: fmt.Sprintf("lifecycle-bench -phases broadcast -broadcast %d", n)}))
	return nil
}
