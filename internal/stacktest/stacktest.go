// Package stacktest holds the helpers the end-to-end test suites (e2e, api)
// share to run against the real stack: the Temporal dev server, PostgreSQL
// and Mailpit that `make test` starts, found through internal/testenv.
//
// It is a normal package only so that several test packages can import it;
// it is meant to be used from tests alone, never from production code.
package stacktest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/workerapp"
)

// Stack is one test's view of the real servers: a fresh CRM database and a
// task queue of its own on the shared Temporal dev server and Mailpit.
type Stack struct {
	// Cfg is the configuration loaded from Env.
	Cfg config.Config
	// Env is the environment the configuration was loaded from; StartProcess
	// hands it to the worker process.
	Env map[string]string
	// Client is a Temporal client on Cfg's namespace, closed at cleanup.
	Client client.Client
	// Mailpit is the shared Mailpit's API.
	Mailpit *mailpit.Client
	// Encryption is the payload encryption Client uses (the worker's own).
	Encryption *temporalclient.Encryption
}

// QuietLogger logs warnings and errors only, to stderr.
func QuietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// New connects to the servers (skipping or failing the test as testenv
// decides when one is missing) and prepares a configuration with a fresh
// database and a task queue of its own ("stacktest-<random>"). extraEnv is
// laid over the defaults: a suite sets TIME_SCALE, secrets, its own
// TEMPORAL_TASK_QUEUE name or another SMTP server there.
func New(t testing.TB, extraEnv map[string]string) *Stack {
	t.Helper()
	temporalAddr := testenv.Temporal(t)
	smtpAddr, apiURL := testenv.Mailpit(t)
	dbURL := testenv.NewDatabase(t)
	// The schema is there before any worker starts, as in a deployment
	// whose worker ran once: a test's first signup needs the data-key
	// table (package privacy) even when its worker process starts later.
	migrateCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := crm.Open(migrateCtx, dbURL)
	require.NoError(t, err)
	require.NoError(t, store.Migrate(migrateCtx))
	store.Close()
	host, port, err := net.SplitHostPort(smtpAddr)
	require.NoError(t, err)
	env := map[string]string{
		"TEMPORAL_ADDRESS": temporalAddr, "TEMPORAL_TASK_QUEUE": "stacktest-" + testenv.RandomID(4),
		"DATABASE_URL": dbURL, "SMTP_HOST": host, "SMTP_PORT": port,
		"METRICS_ADDR": "", "LOG_LEVEL": "warn",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, err := config.LoadFrom(env)
	require.NoError(t, err)
	enc, err := temporalclient.NewEncryption(cfg)
	require.NoError(t, err)
	t.Cleanup(enc.Close)
	opts, err := enc.Options(cfg.Temporal)
	require.NoError(t, err)
	opts.HostPort, opts.Logger = temporalAddr, tlog.NewStructuredLogger(QuietLogger())
	c, err := client.Dial(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &Stack{Cfg: cfg, Env: env, Client: c, Mailpit: mailpit.New(apiURL), Encryption: enc}
}

// StartWorker runs an in-process worker, built as the worker command builds
// it (internal/workerapp), until the test ends.
func (s *Stack) StartWorker(t testing.TB) *workerapp.App {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := workerapp.New(ctx, s.Cfg, s.Client, nil, QuietLogger())
	require.NoError(t, err)
	require.NoError(t, app.Worker.Start())
	t.Cleanup(func() {
		app.Worker.Stop()
		app.Close()
	})
	return app
}

// BuildWorker builds the worker command into the test's temporary
// directory and returns the binary's path.
func BuildWorker(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/acme/lifecycle/worker").CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)
	return bin
}

// Process is the worker command run as a separate process, so that it can
// be killed with SIGKILL like a crashed machine.
type Process struct {
	Cmd *exec.Cmd
	// Log is the file the process writes its stdout and stderr to.
	Log *os.File
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() error {
	err := p.Cmd.Process.Signal(syscall.SIGKILL)
	_, _ = p.Cmd.Process.Wait()
	return err
}

// StartProcess runs bin (see BuildWorker) with the stack's environment. At
// cleanup it gets SIGTERM and is waited for; when the test failed, the
// tail of its log is logged.
func (s *Stack) StartProcess(t testing.TB, bin string) *Process {
	t.Helper()
	return s.StartProcessEnv(t, bin, nil)
}

// StartProcessEnv is StartProcess with env laid over the stack's
// environment: a second worker process on the same task queue needs a
// METRICS_ADDR of its own, for one.
func (s *Stack) StartProcessEnv(t testing.TB, bin string, env map[string]string) *Process {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Later entries win (os/exec keeps the last value of a duplicate).
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("worker log %s:\n%s", log.Name(), tail(string(b), 4000))
			}
		}
	})
	return &Process{Cmd: cmd, Log: log}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// WaitFor polls cond every 200ms until it holds or the timeout passes, and
// then fails the test naming what it waited for and the last state cond
// reported.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	WaitForEvery(t, timeout, 200*time.Millisecond, what, cond)
}

// WaitForEvery is WaitFor polling every interval.
func WaitForEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(interval)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// Mails returns the messages in Mailpit matching a search query, such as
// "to:someone@example.com" or "to:example.com".
func (s *Stack) Mails(t testing.TB, query string) []mailpit.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := s.Mailpit.Search(ctx, query)
	require.NoError(t, err)
	return msgs
}

// WaitMail waits for an email to `to` whose subject contains subjectPart
// and returns it. A failed search counts as "not yet".
func (s *Stack) WaitMail(t testing.TB, to, subjectPart string, timeout time.Duration) mailpit.Summary {
	t.Helper()
	var found mailpit.Summary
	WaitFor(t, timeout, fmt.Sprintf("email to %s with %q", to, subjectPart), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		msgs, err := s.Mailpit.Search(ctx, "to:"+to)
		if err != nil {
			return false, err.Error()
		}
		var subjects []string
		for _, m := range msgs {
			if strings.Contains(m.Subject, subjectPart) {
				found = m
				return true, ""
			}
			subjects = append(subjects, m.Subject)
		}
		return false, strings.Join(subjects, " | ")
	})
	return found
}

// DaytimeZone returns a time zone where it is working hours now, so that
// quiet hours (21:00-08:00 local) never delay an email whatever time of day
// the test runs.
func DaytimeZone(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"UTC", "Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Auckland"} {
		loc, err := time.LoadLocation(name)
		require.NoError(t, err)
		if h := time.Now().In(loc).Hour(); h >= 9 && h < 18 {
			return name
		}
	}
	t.Fatal("no daytime zone found")
	return ""
}
