// Package workerapp assembles a journey worker from a configuration: the CRM
// store (created and migrated), the campaign registry, the SMTP pool, the
// Temporal worker with the workflow and activities registered. The worker
// command and the end-to-end tests both build their worker here, so the tests
// run exactly what production runs.
package workerapp

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/workflows"
)

// App is a ready worker and what it owns.
type App struct {
	Worker    worker.Worker
	CRM       *crm.Store
	Mail      *email.Sender
	Campaigns *campaign.Registry
}

// New builds the worker on client c. Metrics are registered with reg (nil:
// none). Close releases what New opened; call it after the worker stopped.
func New(ctx context.Context, cfg config.Config, c client.Client, reg prometheus.Registerer, logger *slog.Logger) (*App, error) {
	if err := crm.EnsureDatabase(ctx, cfg.DatabaseURL.Value()); err != nil {
		return nil, fmt.Errorf("CRM database: %w", err)
	}
	store, err := crm.Open(ctx, cfg.DatabaseURL.Value())
	if err != nil {
		return nil, fmt.Errorf("CRM database: %w", err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("CRM migrations: %w", err)
	}
	campaigns, err := LoadCampaigns(cfg.CampaignDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	sender, err := email.NewSender(email.Config{
		Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, Username: cfg.SMTP.Username, Password: cfg.SMTP.Password.Value(),
		TLSMode: cfg.SMTP.TLSMode, From: cfg.SMTP.From, FromName: cfg.SMTP.FromName,
		Connections: cfg.SMTP.Connections, Timeout: cfg.SMTP.Timeout,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("SMTP: %w", err)
	}
	var metrics *activities.Metrics
	if reg != nil {
		metrics = activities.NewMetrics(reg)
	}
	// Process-wide, and only read when the first worker starts.
	worker.SetStickyWorkflowCacheSize(cfg.Temporal.WorkflowCacheSize)
	w := worker.New(c, cfg.Temporal.TaskQueue, WorkerOptions(cfg.Temporal))
	w.RegisterWorkflowWithOptions(workflows.CustomerJourney, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterWorkflowWithOptions(workflows.BroadcastWorkflow, workflow.RegisterOptions{Name: workflows.BroadcastWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.FunnelReportWorkflow, workflow.RegisterOptions{Name: workflows.FunnelReportWorkflowName})
	// One set of activities for journeys and broadcasts: they share the
	// send protocol, and with it the broadcasts' send slots.
	w.RegisterActivity(&activities.Activities{
		CRM: store, Mail: sender, Campaigns: campaigns,
		Signer: email.NewSigner([]byte(cfg.UnsubscribeSecret.Value())), PublicBaseURL: cfg.PublicBaseURL,
		From: cfg.SMTP.From, Concurrency: cfg.SMTP.Connections, Metrics: metrics,
	})
	logger.Info("worker assembled", "task_queue", cfg.Temporal.TaskQueue, "campaigns", campaigns.IDs())
	return &App{Worker: w, CRM: store, Mail: sender, Campaigns: campaigns}, nil
}

// StickyScheduleToStartTimeout is how long a workflow task waits on the
// sticky queue of the worker that has the journey cached before the server
// moves it to the shared queue. The SDK's 5 s is too short under a burst of
// events on a busy server: tasks time out of the sticky queue while the
// worker's last sticky poll still reported a backlog, so the SDK keeps
// every poller on the now-empty sticky queue for a whole long poll (about
// a minute) and the moved tasks wait that long on the shared queue
// (sdk-java#1858, temporal#4562): a burst of events is then applied a
// minute late instead of within seconds. A worker that
// dies without shutting down delays the tasks already on its sticky queue
// by up to this long; tasks scheduled later go to the shared queue once its
// sticky queue has had no poller for 10 s (server side).
const StickyScheduleToStartTimeout = 20 * time.Second

// WorkerOptions are the Temporal worker options of the product's worker
// (the benchmark's own workers use them too, so its limits compare).
func WorkerOptions(cfg config.Temporal) worker.Options {
	return worker.Options{
		// In-flight activities get this long to finish on shutdown.
		WorkerStopTimeout:                30 * time.Second,
		MaxConcurrentWorkflowTaskPollers: cfg.WorkflowTaskPollers,
		StickyScheduleToStartTimeout:     StickyScheduleToStartTimeout,
	}
}

// Close releases the SMTP pool and the database pool.
func (a *App) Close() {
	_ = a.Mail.Close()
	a.CRM.Close()
}

// LoadCampaigns loads the built-in campaigns and, when dir is set, the
// definitions in it.
func LoadCampaigns(dir string) (*campaign.Registry, error) {
	r := campaign.NewRegistry()
	if err := r.LoadEmbedded(); err != nil {
		return nil, fmt.Errorf("built-in campaigns: %w", err)
	}
	if dir != "" {
		if err := r.LoadDir(dir); err != nil {
			return nil, fmt.Errorf("CAMPAIGN_DIR=%s: %w", dir, err)
		}
	}
	return r, nil
}
