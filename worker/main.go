// Command worker runs the journey workflows and their activities.
//
// At start it validates the configuration, creates and migrates the CRM
// database, loads the campaign definitions and opens the SMTP pool
// (internal/workerapp); it serves Prometheus metrics and stops gracefully on
// SIGINT/SIGTERM, letting in-flight activities finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/internal/workerapp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sdkMetrics, err := sdkMetricsHandler(reg, logger)
	if err != nil {
		return err
	}
	// Payloads are encrypted per customer (package privacy); the data keys
	// live in the CRM database, which the worker migrates below.
	enc, err := temporalclient.NewEncryption(cfg)
	if err != nil {
		return err
	}
	defer enc.Close()
	opts, err := enc.Options(cfg.Temporal)
	if err != nil {
		return err
	}
	opts.Logger, opts.MetricsHandler = tlog.NewStructuredLogger(logger), sdkMetrics
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.Temporal.Address, err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app, err := workerapp.New(ctx, cfg, c, reg, logger)
	if err != nil {
		return err
	}
	defer app.Close()

	if cfg.MetricsAddr != "" {
		srv := &http.Server{Addr: cfg.MetricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server stopped", "addr", cfg.MetricsAddr, "error", err)
			}
		}()
		defer srv.Close()
	}

	logger.Info("worker started", "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace,
		"task_queue", cfg.Temporal.TaskQueue, "smtp", fmt.Sprintf("%s:%d", cfg.SMTP.Host, cfg.SMTP.Port),
		"metrics", cfg.MetricsAddr, "time_scale", cfg.TimeScale)
	// Run blocks until SIGINT/SIGTERM, then stops polling and waits for
	// in-flight tasks (WorkerStopTimeout).
	if err := app.Worker.Run(worker.InterruptCh()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	logger.Info("worker stopped")
	return nil
}

// sdkMetricsHandler exports the Temporal SDK's metrics (task latencies,
// poller counts, activity failures...) on the same Prometheus registry as
// the project's own, through the SDK's OpenTelemetry contrib and the OTel
// Prometheus exporter.
func sdkMetricsHandler(reg *prometheus.Registry, logger *slog.Logger) (client.MetricsHandler, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("metrics exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		OnError:              func(err error) { logger.Warn("SDK metric", "error", err) },
	}), nil
}
