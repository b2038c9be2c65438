// Command lifecycle-bench measures the lifecycle product on a running local
// stack and writes docs/benchmarks.md. `make bench` starts a stack of its
// own for it (tools/bench/run.sh); see docs/benchmarks.md.
//
// It runs in the repository root whatever directory it is started from:
// its relative paths, the defaults among them, are relative to the root.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/acme/lifecycle/tools/bench"
)

func main() {
	var cfg bench.Config
	var phases, root string
	flag.StringVar(&root, "root", "", "repository root, which relative paths are relative to (default: the nearest directory up from the working directory whose go.mod is the product's)")
	flag.StringVar(&cfg.TemporalAddress, "temporal", env("TEMPORAL_ADDRESS", "127.0.0.1:7263"), "Temporal frontend")
	flag.StringVar(&cfg.SMTPAddr, "smtp", env("BENCH_SMTP", "127.0.0.1:1046"), "Mailpit SMTP address")
	flag.StringVar(&cfg.MailpitURL, "mailpit", env("MAILPIT_API_URL", "http://127.0.0.1:8046"), "Mailpit HTTP API")
	flag.StringVar(&cfg.PostgresURL, "postgres", env("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"PostgreSQL admin URL; the run creates (and drops) databases of its own")
	flag.StringVar(&cfg.DataDir, "data", ".data/bench", "the stack's data dir (temporal.db), results and logs")
	flag.StringVar(&cfg.WorkerBin, "worker-bin", "bin/worker", "built worker binary (idle phase)")
	flag.StringVar(&cfg.TemporalBin, "temporal-bin", ".cache/bin/temporal", "Temporal CLI (version line)")
	flag.StringVar(&cfg.MailpitBin, "mailpit-bin", ".cache/bin/mailpit", "Mailpit (version line)")
	flag.StringVar(&cfg.Out, "out", "docs/benchmarks.md", "report file (the part between the generated markers is replaced)")
	flag.StringVar(&cfg.ProfileDir, "profiles", ".data/bench/profiles", "where CPU profiles go")
	flag.StringVar(&phases, "phases", "limits,signups,events,broadcast,cost,idle", "phases to run, comma-separated")
	flag.IntVar(&cfg.Signups, "signups", 300, "signups end to end")
	flag.IntVar(&cfg.SignupConc, "signup-conc", 16, "signups in flight")
	flag.IntVar(&cfg.SignupsSerial, "signups-serial", 20, "signups by 2 callers that each wait for the welcome email (latency without backlog)")
	flag.StringVar(&cfg.GRPCCompression, "grpc-compression", "auto", "gRPC compression of the harness's Temporal client (API, in-process workers): auto, gzip or none, as TEMPORAL_GRPC_COMPRESSION (auto: none on loopback)")
	flag.IntVar(&cfg.Events, "events", 300, "single events (closed loop, until visible in the state query)")
	flag.IntVar(&cfg.EventConc, "event-conc", 8, "event callers in flight")
	flag.IntVar(&cfg.EventBatchCustomers, "event-batch-customers", 200, "journeys in the coalesced-batch events run")
	flag.IntVar(&cfg.EventsPerCustomer, "events-per-customer", 5, "events per journey coalesced into one signal")
	flag.IntVar(&cfg.EventRounds, "event-rounds", 5, "open-loop events rounds, each right after its own raw signal-with-start limit; the median ratio is reported")
	flag.IntVar(&cfg.Broadcast, "broadcast", 10000, "broadcast recipients (each run: Mailpit, null sink)")
	flag.IntVar(&cfg.BroadcastScale, "broadcast-scale", 1_000_000, "recipients of the broadcast-scale phase (null sink, worker process; not in the default -phases: add it, and -out elsewhere to keep the full report)")
	flag.Float64Var(&cfg.CostScale, "cost-scale", 500_000, "TIME_SCALE of the cost journeys")
	flag.IntVar(&cfg.CostJourneys, "cost-journeys", 2, "typical journeys run in parallel for the cost figures")
	flag.IntVar(&cfg.Idle, "idle", 1000, "journeys waiting on timers (idle phase)")
	flag.IntVar(&cfg.SMTPRaw, "smtp-raw", 2000, "messages of the raw SMTP limit")
	flag.IntVar(&cfg.NoopWF, "noop", 300, "no-op workflows of the Temporal limit (and 2× signal-with-starts)")
	flag.IntVar(&cfg.PGInsert, "pg-inserts", 10000, "rows of the pgx insert limit")
	flag.IntVar(&cfg.SMTPConnections, "smtp-connections", 8, "SMTP_CONNECTIONS of the workers and the raw SMTP limit")
	flag.IntVar(&cfg.WorkflowPollers, "workflow-pollers", 0, "WORKER_WORKFLOW_POLLERS of every worker the run starts (0: the product's default)")
	flag.BoolVar(&cfg.KeepDatabases, "keep-dbs", false, "keep the CRM databases the run created")
	flag.Parse()
	if err := chdirRoot(root); err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle-bench:", err)
		os.Exit(2)
	}
	cfg.RootRelative()
	cfg.Phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases[p] = true
		}
	}
	cfg.Command = commandLine(flag.CommandLine)
	// One log format for the harness and its figures' windows.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := bench.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle-bench:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// chdirRoot changes into the repository root (dir, or the one found from
// the working directory), so that the run finds docs/, .cache/ and .data/
// when started elsewhere too, e.g. by `go run -C tools/bench`.
func chdirRoot(dir string) error {
	if dir == "" {
		var err error
		if dir, err = bench.FindRoot("."); err != nil {
			return fmt.Errorf("repository root: %w (run inside the repository or pass -root)", err)
		}
	}
	return os.Chdir(dir)
}

// commandLine is the run's command line for the report: the flags given,
// with the values the run used (paths relative to the repository root) and
// without the PostgreSQL password, since the report is committed.
func commandLine(fs *flag.FlagSet) string {
	parts := []string{"lifecycle-bench"}
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		switch f.Name {
		case "root": // the machine's path; the report lives in the root anyway
			return
		case "postgres":
			if u, err := url.Parse(v); err == nil {
				v = u.Redacted()
			}
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			parts = append(parts, "-"+f.Name+"="+v)
		} else {
			parts = append(parts, "-"+f.Name, v)
		}
	})
	return strings.Join(parts, " ")
}
