// Package e2e runs journeys end to end on the real stack: the Temporal dev
// server, PostgreSQL and Mailpit that `make test` starts. A worker is built
// exactly as the worker command builds it (internal/workerapp), on a task
// queue of its own, against a fresh CRM database.
//
// With RECORD_HISTORIES=1 the tests also write the histories of the journeys
// they ran to workflows/testdata/histories, where the replay test checks
// every workflow change against them (`make record-histories`).
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/workerapp"
	"github.com/acme/lifecycle/workflows"
)

// stack is one test's view of the real servers.
type stack struct {
	cfg     config.Config
	env     map[string]string
	client  client.Client
	mailpit *mailpit.Client
	app     *workerapp.App
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newStack connects to the servers and prepares a configuration with a
// fresh database and a task queue of its own; scale is the time scale.
func newStack(t *testing.T, scale float64) *stack {
	t.Helper()
	temporalAddr := testenv.Temporal(t)
	smtpAddr, apiURL := testenv.Mailpit(t)
	dbURL := testenv.NewDatabase(t)
	host, port, _ := strings.Cut(smtpAddr, ":")
	env := map[string]string{
		"TEMPORAL_ADDRESS": temporalAddr, "TEMPORAL_TASK_QUEUE": "e2e-" + testenv.RandomID(4),
		"DATABASE_URL": dbURL, "SMTP_HOST": host, "SMTP_PORT": port,
		"TIME_SCALE": fmt.Sprint(scale), "METRICS_ADDR": "", "LOG_LEVEL": "warn",
	}
	cfg, err := config.LoadFrom(env)
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: cfg.Temporal.Namespace, Logger: tlog.NewStructuredLogger(quietLogger())})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &stack{cfg: cfg, env: env, client: c, mailpit: mailpit.New(apiURL)}
}

// startWorker runs an in-process worker until the test ends.
func (s *stack) startWorker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := workerapp.New(ctx, s.cfg, s.client, nil, quietLogger())
	require.NoError(t, err)
	require.NoError(t, app.Worker.Start())
	s.app = app
	t.Cleanup(func() {
		app.Worker.Stop()
		app.Close()
	})
}

func (s *stack) starter() workflows.Starter {
	return workflows.Starter{Client: s.client, TaskQueue: s.cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: s.cfg.TimeScale}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// waitStage waits until the journey's query reports the stage.
func (s *stack) waitStage(t *testing.T, customerID, stage string, timeout time.Duration) workflows.JourneyView {
	t.Helper()
	var v workflows.JourneyView
	waitFor(t, timeout, customerID+" in stage "+stage, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		v, err = workflows.State(ctx, s.client, customerID)
		if err != nil {
			return false, err.Error()
		}
		return string(v.Stage) == stage, string(v.Stage)
	})
	return v
}

// mails returns the subjects of the messages to an address.
func (s *stack) mails(t *testing.T, to string) []mailpit.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := s.mailpit.Search(ctx, "to:"+to)
	require.NoError(t, err)
	return msgs
}

func (s *stack) waitMail(t *testing.T, to, subjectPart string, timeout time.Duration) mailpit.Summary {
	t.Helper()
	var found mailpit.Summary
	waitFor(t, timeout, fmt.Sprintf("email to %s with %q", to, subjectPart), func() (bool, string) {
		var subjects []string
		for _, m := range s.mails(t, to) {
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

// recordHistories writes every run of a journey to
// workflows/testdata/histories/<name>-<n>.json when RECORD_HISTORIES=1.
func (s *stack) recordHistories(t *testing.T, customerID, name string) {
	t.Helper()
	if os.Getenv("RECORD_HISTORIES") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = %q", workflows.JourneyID(customerID)),
	})
	require.NoError(t, err)
	dir := filepath.Join("..", "workflows", "testdata", "histories")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, ex := range resp.GetExecutions() {
		var events []*historypb.HistoryEvent
		it := s.client.GetWorkflowHistory(ctx, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			events = append(events, e)
		}
		raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
		require.NoError(t, err)
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.json", name, i+1))
		require.NoError(t, os.WriteFile(file, raw, 0o644))
		t.Logf("recorded %s (%d events, %s)", file, len(events), ex.GetStatus())
	}
}
