// Package bench measures the lifecycle product on the real local stack
// (Temporal dev server, PostgreSQL, Mailpit) and writes docs/benchmarks.md:
// end-to-end signups, events into running journeys, broadcasts (Mailpit and
// a null SMTP sink), the Temporal cost of a customer-year, idle scale, and —
// in the same run — the limits each figure is compared with (raw SMTP, no-op
// workflows, pgx inserts).
//
// It is a command (cmd/lifecycle-bench), run by `make bench`, rather than
// `go test -bench` functions: the figures are rates, percentiles, bytes and
// fractions of limits measured in one run against one stack, which
// testing.B's ns/op model does not carry; the run needs its own time budget
// (go test's 10-minute default), a worker subprocess to read its RSS from
// /proc, and it writes a report. Nothing here runs in `make test`, which
// only vets it.
//
// It is a module of its own (tools/bench, like the pinned tools beside it)
// so that the product's module and its `go test ./...` carry none of it;
// it builds against the product in this checkout (the replace in go.mod).
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/internal/workerapp"
)

// Config sizes and points the run. Zero sizes skip a phase.
type Config struct {
	TemporalAddress string
	SMTPAddr        string // Mailpit SMTP
	MailpitURL      string // Mailpit HTTP API
	PostgresURL     string // admin URL; the run creates databases of its own
	DataDir         string // the stack's data dir (temporal.db lives there)
	WorkerBin       string // built worker binary (idle-scale phase)
	TemporalBin     string // for the version line
	MailpitBin      string // for the version line
	Out             string // docs/benchmarks.md
	ProfileDir      string
	Phases          map[string]bool

	Signups, SignupConc       int
	SignupsSerial             int    // signups measured one caller-wait at a time (latency without backlog)
	GRPCCompression           string // auto, gzip or none, as TEMPORAL_GRPC_COMPRESSION
	Events, EventConc         int
	EventBatchCustomers       int // customers in the coalesced-batch events run
	EventsPerCustomer         int // events per customer (one signal) in that run
	EventRounds               int // open-loop rounds, each paired with its own raw limit
	Broadcast                 int
	BroadcastScale            int // recipients of the broadcast-scale phase (not in the default phases)
	CostScale                 float64
	CostJourneys              int
	Idle                      int
	SMTPRaw, NoopWF, PGInsert int
	SMTPConnections           int
	WorkflowPollers           int // WORKER_WORKFLOW_POLLERS of every worker (0: the product's default)
	KeepDatabases             bool
	Command                   string // how this run was invoked (for the report)
}

// Harness is one run.
type Harness struct {
	cfg     Config
	id      string
	log     *slog.Logger
	c       client.Client
	mp      *mailpit.Client
	dbURL   string // the run's CRM database
	dbs     []string
	results *Results

	ms           *mainStack
	signupPrefix string
	queries      atomic.Int64 // state queries the harness issued
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Run runs the selected phases and writes the report.
func Run(ctx context.Context, cfg Config) error {
	h := &Harness{cfg: cfg, id: randomID(3), log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	h.results = &Results{Started: time.Now(), Config: cfg}
	h.mp = mailpit.New(cfg.MailpitURL)
	if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
		return err
	}
	h.results.Machine = machine(ctx, cfg)
	cpuPIDFiles["temporal"] = filepath.Join(cfg.DataDir, "run", "temporal.pid")
	cpuPIDFiles["mailpit"] = filepath.Join(cfg.DataDir, "run", "mailpit.pid")
	defer h.dropDatabases()
	defer h.closeMain()
	var err error
	if h.dbURL, err = h.newDatabase(ctx, "lifecycle_bench_"+h.id); err != nil {
		return err
	}
	// The harness's client encrypts payloads as every process of the
	// product does, with its data keys in the phases' database.
	c, closeClient, err := h.dial(h.dbURL)
	if err != nil {
		return err
	}
	defer closeClient()
	h.c = c

	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"limits", h.limits},
		{"signups", h.signups},
		{"events", h.events},
		{"broadcast", h.broadcast},
		{"broadcast-scale", h.broadcastScale},
		{"cost", h.cost},
		{"idle", h.idle},
	}
	var failed []string
	for _, p := range phases {
		if !cfg.Phases[p.name] {
			continue
		}
		h.log.Info("phase start", "phase", p.name, "load", loadavg())
		t0 := time.Now()
		if err := p.fn(ctx); err != nil {
			h.log.Error("phase failed", "phase", p.name, "error", err)
			h.results.note("%s: FAILED: %v", p.name, err)
			failed = append(failed, p.name)
		}
		h.log.Info("phase done", "phase", p.name, "took", time.Since(t0).Round(time.Millisecond))
	}
	h.results.Finished = time.Now()
	h.results.fractions()
	if err := h.results.save(filepath.Join(cfg.DataDir, "results")); err != nil {
		h.log.Warn("save results", "error", err)
	}
	if err := writeReport(cfg.Out, h.results); err != nil {
		return err
	}
	h.log.Info("report written", "file", cfg.Out)
	if len(failed) > 0 {
		return fmt.Errorf("phases failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// workerConfig is the configuration of an in-process (or subprocess)
// worker on a task queue of its own against db.
func (h *Harness) workerConfig(taskQueue, db, smtpAddr string) (config.Config, map[string]string, error) {
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return config.Config{}, nil, err
	}
	env := map[string]string{
		"TEMPORAL_ADDRESS": h.cfg.TemporalAddress, "TEMPORAL_TASK_QUEUE": taskQueue,
		"DATABASE_URL": db, "SMTP_HOST": host, "SMTP_PORT": port,
		"SMTP_CONNECTIONS": strconv.Itoa(h.cfg.SMTPConnections),
		"METRICS_ADDR":     "", "LOG_LEVEL": "warn",
		"API_SECRET": "bench-api-secret-" + h.id, "UNSUBSCRIBE_SECRET": "bench-unsub-secret-" + h.id,
	}
	if h.cfg.WorkflowPollers > 0 {
		env["WORKER_WORKFLOW_POLLERS"] = strconv.Itoa(h.cfg.WorkflowPollers)
	}
	cfg, err := config.LoadFrom(env)
	return cfg, env, err
}

// workerOptions are the options of the harness's own workers (the limits'
// no-op and signal-sink workflows): the product worker's poller count, so
// a limit and the figure compared with it poll alike.
func (h *Harness) workerOptions() worker.Options {
	// The database and SMTP values only satisfy validation: the count
	// comes from the same config the product worker loads.
	cfg, _, err := h.workerConfig("limits", "postgres://limits", "127.0.0.1:25")
	if err != nil {
		return worker.Options{}
	}
	return workerapp.WorkerOptions(cfg.Temporal)
}

// startWorker builds and starts an in-process worker exactly as the worker
// command does (internal/workerapp).
func (h *Harness) startWorker(ctx context.Context, cfg config.Config, reg prometheus.Registerer) (*workerapp.App, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	app, err := workerapp.New(ctx, cfg, h.c, reg, quiet())
	if err != nil {
		return nil, nil, err
	}
	if err := app.Worker.Start(); err != nil {
		app.Close()
		return nil, nil, err
	}
	return app, func() { app.Worker.Stop(); app.Close() }, nil
}

// dial connects to Temporal with the product's payload encryption
// (internal/temporalclient), its data keys in the database at dbURL: a
// client must use the data-key store of the workers it talks to.
func (h *Harness) dial(dbURL string) (client.Client, func(), error) {
	cfg, err := config.LoadFrom(map[string]string{"TEMPORAL_ADDRESS": h.cfg.TemporalAddress,
		"TEMPORAL_GRPC_COMPRESSION": h.cfg.GRPCCompression, "DATABASE_URL": dbURL})
	if err != nil {
		return nil, nil, err
	}
	enc, err := temporalclient.NewEncryption(cfg)
	if err != nil {
		return nil, nil, err
	}
	opts, err := enc.Options(cfg.Temporal)
	if err != nil {
		enc.Close()
		return nil, nil, err
	}
	opts.Logger = tlog.NewStructuredLogger(quiet())
	c, err := client.Dial(opts)
	if err != nil {
		enc.Close()
		return nil, nil, fmt.Errorf("dial Temporal at %s: %w", cfg.Temporal.Address, err)
	}
	return c, func() { c.Close(); enc.Close() }, nil
}

// newDatabase creates (and remembers, to drop at the end) a database with
// the CRM schema: the data keys of the clients' first payloads go there
// before any worker has started.
func (h *Harness) newDatabase(ctx context.Context, name string) (string, error) {
	u, err := url.Parse(h.cfg.PostgresURL)
	if err != nil {
		return "", fmt.Errorf("postgres URL: %w", err)
	}
	db := *u
	db.Path = "/" + name
	if err := crm.EnsureDatabase(ctx, db.String()); err != nil {
		return "", err
	}
	h.dbs = append(h.dbs, name)
	store, err := crm.Open(ctx, db.String())
	if err != nil {
		return "", err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return "", fmt.Errorf("migrate %s: %w", name, err)
	}
	return db.String(), nil
}

func (h *Harness) dropDatabases() {
	if h.cfg.KeepDatabases {
		h.log.Info("keeping databases", "names", h.dbs)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.cfg.PostgresURL)
	if err != nil {
		h.log.Warn("drop databases", "error", err)
		return
	}
	defer conn.Close(ctx)
	for _, name := range h.dbs {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			h.log.Warn("drop database", "name", name, "error", err)
		}
	}
}

func (h *Harness) pgDatabaseSize(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n)
	return n, err
}
