package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// Connection is how a process authenticates to a secured Temporal: a
// cluster with TLS or mTLS, or Temporal Cloud with an API key or mTLS. The
// variables are the ones of Temporal's environment configuration, which the
// Temporal CLI reads too, so one environment serves the worker and `temporal
// workflow show`. The SDK's envconfig package turns them into client
// options; what it would only find out at the first dial (a missing file, a
// certificate without its key, a CA file that holds no certificate) is
// checked here, at start, with the variable named.
type Connection struct {
	// APIKey authenticates to Temporal Cloud (or a server with an API-key
	// authorizer); it turns TLS on unless TEMPORAL_TLS=false.
	APIKey Secret `env:"TEMPORAL_API_KEY"`
	// TLS is "true", "false" or empty: empty turns TLS on when any other
	// setting here is set.
	TLS string `env:"TEMPORAL_TLS"`
	// The client certificate and key for mTLS, as files or as PEM data.
	ClientCertPath string `env:"TEMPORAL_TLS_CLIENT_CERT_PATH"`
	ClientCertData string `env:"TEMPORAL_TLS_CLIENT_CERT_DATA"`
	ClientKeyPath  string `env:"TEMPORAL_TLS_CLIENT_KEY_PATH"`
	ClientKeyData  Secret `env:"TEMPORAL_TLS_CLIENT_KEY_DATA"`
	// The CA that signed the server's certificate, when it is not one the
	// system trusts (a self-hosted cluster's own CA).
	ServerCACertPath string `env:"TEMPORAL_TLS_SERVER_CA_CERT_PATH"`
	ServerCACertData string `env:"TEMPORAL_TLS_SERVER_CA_CERT_DATA"`
	// ServerName is the name the server's certificate must carry, when it
	// differs from the host of TEMPORAL_ADDRESS (SNI and verification).
	ServerName string `env:"TEMPORAL_TLS_SERVER_NAME"`
	// DisableHostVerification skips checking the server's name (never in
	// production).
	DisableHostVerification bool `env:"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"`
}

// enabled reports whether the connection uses TLS.
func (c Connection) enabled() bool {
	if v, err := strconv.ParseBool(c.TLS); err == nil {
		return v
	}
	return c.APIKey != "" || c.ClientCertPath != "" || c.ClientCertData != "" || c.ClientKeyPath != "" ||
		c.ClientKeyData != "" || c.ServerCACertPath != "" || c.ServerCACertData != "" || c.ServerName != "" ||
		c.DisableHostVerification
}

// validate checks the settings as the first dial would use them; every
// error names the variable (never a secret's value).
func (c Connection) validate() error {
	var errs []error
	if c.TLS != "" {
		if _, err := strconv.ParseBool(c.TLS); err != nil {
			errs = append(errs, fmt.Errorf("TEMPORAL_TLS=%q: must be true or false (or unset)", c.TLS))
		}
	}
	both := func(path, data, name string) {
		if path != "" && data != "" {
			errs = append(errs, fmt.Errorf("%s_PATH and %s_DATA: set one, not both", name, name))
		}
	}
	both(c.ClientCertPath, c.ClientCertData, "TEMPORAL_TLS_CLIENT_CERT")
	both(c.ClientKeyPath, c.ClientKeyData.Value(), "TEMPORAL_TLS_CLIENT_KEY")
	both(c.ServerCACertPath, c.ServerCACertData, "TEMPORAL_TLS_SERVER_CA_CERT")
	read := func(path, data, name string) ([]byte, bool) {
		if path == "" {
			return []byte(data), data != ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s_PATH: %w", name, err))
			return nil, false
		}
		return b, true
	}
	cert, hasCert := read(c.ClientCertPath, c.ClientCertData, "TEMPORAL_TLS_CLIENT_CERT")
	key, hasKey := read(c.ClientKeyPath, c.ClientKeyData.Value(), "TEMPORAL_TLS_CLIENT_KEY")
	switch {
	case hasCert && !hasKey && c.ClientKeyPath == "":
		errs = append(errs, errors.New("TEMPORAL_TLS_CLIENT_CERT_*: set, but TEMPORAL_TLS_CLIENT_KEY_PATH (or _DATA) is not: mTLS needs both"))
	case hasKey && !hasCert && c.ClientCertPath == "":
		errs = append(errs, errors.New("TEMPORAL_TLS_CLIENT_KEY_*: set, but TEMPORAL_TLS_CLIENT_CERT_PATH (or _DATA) is not: mTLS needs both"))
	case hasCert && hasKey:
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			// The library's message names no file and shows no key.
			errs = append(errs, fmt.Errorf("TEMPORAL_TLS_CLIENT_CERT_* and TEMPORAL_TLS_CLIENT_KEY_*: not a certificate and its private key in PEM: %w", err))
		}
	}
	if ca, ok := read(c.ServerCACertPath, c.ServerCACertData, "TEMPORAL_TLS_SERVER_CA_CERT"); ok {
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			errs = append(errs, errors.New("TEMPORAL_TLS_SERVER_CA_CERT_*: holds no PEM certificate"))
		}
	}
	if c.APIKey != "" && c.TLS != "" && !c.enabled() {
		errs = append(errs, errors.New("TEMPORAL_API_KEY with TEMPORAL_TLS=false: an API key must not travel unencrypted"))
	}
	return errors.Join(errs...)
}

// apply adds the connection's TLS and credentials to opts, through the
// SDK's envconfig (the same rules as the Temporal CLI).
func (c Connection) apply(opts *client.Options) error {
	if !c.enabled() {
		return nil
	}
	profile := envconfig.ClientConfigProfile{
		Address: opts.HostPort, Namespace: opts.Namespace, APIKey: c.APIKey.Value(),
		TLS: &envconfig.ClientConfigTLS{
			ClientCertPath: c.ClientCertPath, ClientCertData: []byte(c.ClientCertData),
			ClientKeyPath: c.ClientKeyPath, ClientKeyData: []byte(c.ClientKeyData.Value()),
			ServerCACertPath: c.ServerCACertPath, ServerCACertData: []byte(c.ServerCACertData),
			ServerName: c.ServerName, DisableHostVerification: c.DisableHostVerification,
		},
	}
	built, err := profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return fmt.Errorf("TEMPORAL_TLS_* / TEMPORAL_API_KEY: %w", err)
	}
	opts.ConnectionOptions.TLS = built.ConnectionOptions.TLS
	opts.Credentials = built.Credentials
	return nil
}
