package e2e

import (
	"context"
	"maps"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/internal/tlstest"
	"github.com/acme/lifecycle/workflows"
)

// TestWorkerConnectsToATLSSecuredServer: a worker process configured only by
// the README's variables (TEMPORAL_TLS_CLIENT_CERT_PATH, …_KEY_PATH,
// …_SERVER_CA_CERT_PATH, …_SERVER_NAME) reaches a Temporal server behind
// mutual TLS and runs a journey: the welcome email arrives. The server is
// the dev server behind a TLS-terminating proxy that requires a client
// certificate of the test's CA (the dev server serves no TLS itself). A
// client without the certificate, or one that expects another server name,
// is refused.
func TestWorkerConnectsToATLSSecuredServer(t *testing.T) {
	t.Parallel()
	s := newStack(t, 1)
	certs := tlstest.New(t, "temporal.lifecycle.test")
	proxy := tlstest.Proxy(t, certs, s.Env["TEMPORAL_ADDRESS"])
	secured := map[string]string{
		"TEMPORAL_ADDRESS":                 proxy,
		"TEMPORAL_TLS_CLIENT_CERT_PATH":    certs.ClientCert,
		"TEMPORAL_TLS_CLIENT_KEY_PATH":     certs.ClientKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": certs.CA,
		"TEMPORAL_TLS_SERVER_NAME":         certs.ServerName,
	}

	// Refused: no client certificate; a server name the certificate does
	// not carry.
	dial := func(env map[string]string) error {
		vars := maps.Clone(s.Env)
		maps.Copy(vars, env)
		cfg, err := config.LoadFrom(vars)
		require.NoError(t, err)
		opts, err := s.Encryption.Options(cfg.Temporal)
		require.NoError(t, err)
		opts.Logger = nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			c.Close()
		}
		return err
	}
	noCert := maps.Clone(secured)
	delete(noCert, "TEMPORAL_TLS_CLIENT_CERT_PATH")
	delete(noCert, "TEMPORAL_TLS_CLIENT_KEY_PATH")
	require.Error(t, dial(noCert), "no client certificate")
	wrongName := maps.Clone(secured)
	wrongName["TEMPORAL_TLS_SERVER_NAME"] = "other.lifecycle.test"
	require.Error(t, dial(wrongName), "a server name the certificate does not carry")
	require.NoError(t, dial(secured), "the README's settings")

	// A worker process with those settings runs a journey.
	worker := s.StartProcessEnv(t, stacktest.BuildWorker(t), secured)
	id := "tls-" + testenv.RandomID(5)
	_, err := s.starter().Signup(context.Background(), workflows.Signup{CustomerID: id, Email: id + "@tls.example",
		FirstName: "Tom", LeadSource: "cold", TimeZone: stacktest.DaytimeZone(t)})
	require.NoError(t, err)
	s.WaitMail(t, id+"@tls.example", "your trial has started", 60*time.Second)
	require.NoError(t, worker.Cmd.Process.Signal(syscall.Signal(0)), "the worker is still running")
}
