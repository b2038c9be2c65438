// Command api serves the HTTP API (package api) on HTTP_ADDR: signups and
// events from CRM and product systems into journeys, journey state, and the
// one-click unsubscribe pages customers reach from emails. See docs/api.md.
//
// It reads the same environment as the worker (config.Load). It uses the
// CRM database but does not migrate it: the worker owns the schema
// (workerapp migrates at start). Temporal and PostgreSQL are both dialled
// lazily, so the API starts while either is still coming up or away;
// /readyz reports them, and requests that need Temporal answer 503 with
// Retry-After meanwhile. SIGINT/SIGTERM stop
// it gracefully: in-flight requests get 30 seconds to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/erasure"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

func main() {
	campaignID := flag.String("campaign", "saas-lifecycle", "campaign new journeys start on")
	flag.Parse()
	if err := run(*campaignID); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(campaignID string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The same payload encryption as the worker's (package privacy): a
	// customer's first signup creates their data key in the CRM database.
	enc, err := temporalclient.NewEncryption(cfg)
	if err != nil {
		return err
	}
	defer enc.Close()
	opts, err := enc.Options(cfg.Temporal)
	if err != nil {
		return err
	}
	opts.Logger = tlog.NewStructuredLogger(logger)
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return fmt.Errorf("Temporal client for %s: %w", cfg.Temporal.Address, err) //nolint:staticcheck // ST1005: "Temporal" is a proper noun
	}
	defer c.Close()

	// The API starts without the database: signups and events go to
	// Temporal, and only the unsubscribe pages, replay protection and
	// /readyz use the CRM (each copes with it being away).
	store, err := crm.Connect(cfg.DatabaseURL.Value())
	if err != nil {
		return fmt.Errorf("CRM database: %w", err)
	}
	defer store.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := store.Pool().Ping(pingCtx); err != nil {
		logger.Warn("CRM database not reachable at start; serving anyway", "error", err)
	}
	cancel()

	starter := workflows.Starter{Client: c, TaskQueue: cfg.Temporal.TaskQueue, CampaignID: campaignID, TimeScale: cfg.TimeScale}
	h := api.New(api.Options{
		Starter: starter,
		CRM:     store,
		Eraser:  &erasure.Eraser{Journeys: starter, CRM: store, Keys: enc.Keys, Audit: store.Pool()},
		Signer:  email.NewSigner([]byte(cfg.UnsubscribeSecret.Value())),
		Secret:  []byte(cfg.APISecret.Value()),
		Logger:  logger,
	})
	// The codec server shares the API's listener but not its
	// authentication: the Temporal Web UI calls it from the browser
	// (docs/privacy.md).
	mux := http.NewServeMux()
	mux.Handle("/codec/", privacy.CodecServer(enc.Codec, privacy.CodecServerOptions{
		Token: cfg.Codec.Token.Value(), Origins: cfg.Codec.Origins}))
	mux.Handle("/", h)
	srv := api.Server(cfg.HTTPAddr, mux)
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("api started", "addr", cfg.HTTPAddr, "temporal", cfg.Temporal.Address,
		"namespace", cfg.Temporal.Namespace, "task_queue", cfg.Temporal.TaskQueue,
		"campaign", campaignID, "public_base_url", cfg.PublicBaseURL)

	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", cfg.HTTPAddr, err)
	case <-ctx.Done():
	}
	logger.Info("api stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("api stopped")
	return nil
}
