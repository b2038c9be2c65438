package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/workflows"
)

// IdleReport is N journeys waiting on timers.
type IdleReport struct {
	Journeys       int           `json:"journeys"`
	StartRate      float64       `json:"start_rate"` // signups/s (client signal-with-start)
	ReadyAfter     time.Duration `json:"ready_after"`
	RSSBefore      int64         `json:"rss_before"`
	RSSAfter       int64         `json:"rss_after"`
	HWMAfter       int64         `json:"hwm_after"`
	TemporalBefore int64         `json:"temporal_before"`
	TemporalAfter  int64         `json:"temporal_after"`
	CRMBefore      int64         `json:"crm_before"`
	CRMAfter       int64         `json:"crm_after"`
	Load           string        `json:"load"`
	WorkerPID      int           `json:"worker_pid"`
	Repro          string        `json:"repro"`
}

// idle starts N journeys served by a worker process started from the
// built worker binary and measures, once every journey sent its welcome
// email and waits on its next timer: the worker's RSS (/proc/<pid>/status),
// the Temporal SQLite file growth per journey and the CRM database growth
// per customer (pg_database_size).
func (h *Harness) idle(ctx context.Context) error {
	n := h.cfg.Idle
	db, err := h.newDatabase(ctx, "lifecycle_bench_idle_"+h.id)
	if err != nil {
		return err
	}
	tq := "bench-idle-" + h.id
	_, env, err := h.workerConfig(tq, db, h.cfg.SMTPAddr)
	if err != nil {
		return err
	}
	pid, stop, err := h.startWorkerProcess(env, "idle-worker")
	if err != nil {
		return err
	}
	defer stop()
	logFile := filepath.Join(h.cfg.DataDir, "log", "idle-worker.log")
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// Ready when the worker migrated the CRM.
	for deadline := time.Now().Add(time.Minute); ; {
		var reg *string
		if err := conn.QueryRow(ctx, `SELECT to_regclass('email_log')::text`).Scan(&reg); err == nil && reg != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker (pid %d) did not migrate the CRM in a minute; see %s", pid, logFile)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	rep := &IdleReport{Journeys: n, WorkerPID: pid, Repro: fmt.Sprintf("lifecycle-bench -phases idle -idle %d", n)}
	rep.RSSBefore, _ = procStatus(pid, "VmRSS")
	rep.TemporalBefore = h.temporalBytes()
	rep.CRMBefore, _ = h.pgDatabaseSize(ctx, db)

	m := begin()
	// Its own client: the idle worker keeps its data keys in its database.
	c, closeClient, err := h.dial(db)
	if err != nil {
		return err
	}
	defer closeClient()
	starter := workflows.Starter{Client: c, TaskQueue: tq, CampaignID: "saas-lifecycle", TimeScale: 1}
	tz := daytimeZone(time.Now())
	prefix := "idle-" + h.id + "-"
	rep.StartRate, err = parallel(n, 32, func(i int) error {
		_, err := starter.Signup(ctx, workflows.Signup{CustomerID: fmt.Sprintf("%s%06d", prefix, i), Email: fmt.Sprintf("i%06d@idle-%s.example", i, h.id),
			FirstName: "Idle", Company: "Idle Co", CompanySize: 10, TimeZone: tz, LeadSource: "cold"})
		return err
	})
	if err != nil {
		return err
	}
	// Every journey has sent its welcome email and waits on a timer.
	// About 5 journeys/s start on this machine kind; allow 300 ms each.
	wait := 5*time.Minute + time.Duration(n)*300*time.Millisecond
	for deadline := time.Now().Add(wait); ; {
		var sent int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM email_log WHERE template = 'welcome' AND status = 'sent'`).Scan(&sent); err != nil {
			return err
		}
		if sent >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d idle journeys sent their welcome email in %s", sent, n, wait)
		}
		time.Sleep(500 * time.Millisecond)
	}
	rep.ReadyAfter = time.Since(m.t0)
	time.Sleep(5 * time.Second) // last workflow tasks complete; the SQLite WAL settles
	rep.RSSAfter, _ = procStatus(pid, "VmRSS")
	rep.HWMAfter, _ = procStatus(pid, "VmHWM")
	rep.TemporalAfter = h.temporalBytes()
	rep.CRMAfter, _ = h.pgDatabaseSize(ctx, db)
	rep.Load = m.load + " → " + load1()
	h.results.Idle = rep
	fn := float64(n)
	h.results.add(m.end(&Figure{Phase: "idle", Name: fmt.Sprintf("idle scale: %d journeys waiting on timers — worker RSS", n),
		Value: float64(rep.RSSAfter) / (1 << 20), Unit: "MiB", N: n,
		Note: fmt.Sprintf("worker binary pid %d: VmRSS %.1f → %.1f MiB (%.1f KiB per journey), VmHWM %.1f MiB; workflow cache WORKER_CACHE_SIZE=%s",
			pid, float64(rep.RSSBefore)/(1<<20), float64(rep.RSSAfter)/(1<<20), float64(rep.RSSAfter-rep.RSSBefore)/1024/fn, float64(rep.HWMAfter)/(1<<20), cacheSize(env)),
		Repro: rep.Repro}))
	h.results.add(m.end(&Figure{Phase: "idle", Name: "idle scale: Temporal SQLite bytes per journey", Value: float64(rep.TemporalAfter-rep.TemporalBefore) / fn, Unit: "bytes",
		N: n, Note: fmt.Sprintf("temporal.db + WAL %.1f → %.1f MiB (SQLite files only grow; includes the welcome step's history)", float64(rep.TemporalBefore)/(1<<20), float64(rep.TemporalAfter)/(1<<20)),
		Repro: rep.Repro}))
	h.results.add(m.end(&Figure{Phase: "idle", Name: "idle scale: CRM bytes per customer", Value: float64(rep.CRMAfter-rep.CRMBefore) / fn, Unit: "bytes",
		N: n, Note: fmt.Sprintf("pg_database_size %.1f → %.1f MiB (contact, transition, welcome ledger row, indexes)", float64(rep.CRMBefore)/(1<<20), float64(rep.CRMAfter)/(1<<20)),
		Repro: rep.Repro}))
	h.results.add(m.end(&Figure{Phase: "idle", Name: "journeys started by the client (signal-with-start, 32 in flight) → welcome sent, worker binary", Value: fn / rep.ReadyAfter.Seconds(), Unit: "signups/s",
		N: n, Elapsed: rep.ReadyAfter, Limit: limitNoopWF, Note: fmt.Sprintf("client accepted %.0f signups/s", rep.StartRate), Repro: rep.Repro}))
	return nil
}

func (h *Harness) temporalBytes() int64 {
	base := filepath.Join(h.cfg.DataDir, "temporal.db")
	return fileSize(base) + fileSize(base+"-wal")
}

// procStatus reads a "kB" field of /proc/<pid>/status in bytes.
func procStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cacheSize is the worker's WORKER_CACHE_SIZE: the harness's environment
// for it, else the process environment, else the product's default.
func cacheSize(env map[string]string) string {
	if v := env["WORKER_CACHE_SIZE"]; v != "" {
		return v
	}
	if v := os.Getenv("WORKER_CACHE_SIZE"); v != "" {
		return v
	}
	return "default (2000)"
}
