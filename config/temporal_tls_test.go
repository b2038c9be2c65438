package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/internal/tlstest"
)

func TestTemporalTLSSettings(t *testing.T) {
	f := tlstest.New(t, "temporal.internal.example")
	c, err := config.LoadFrom(map[string]string{
		"TEMPORAL_ADDRESS":                 "temporal.internal.example:7233",
		"TEMPORAL_TLS_CLIENT_CERT_PATH":    f.ClientCert,
		"TEMPORAL_TLS_CLIENT_KEY_PATH":     f.ClientKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": f.CA,
		"TEMPORAL_TLS_SERVER_NAME":         "temporal.internal.example",
	})
	require.NoError(t, err)
	opts, err := c.Temporal.ClientOptions()
	require.NoError(t, err)
	tlsCfg := opts.ConnectionOptions.TLS
	require.NotNil(t, tlsCfg, "mTLS settings turn TLS on")
	assert.Equal(t, "temporal.internal.example", tlsCfg.ServerName)
	assert.NotNil(t, tlsCfg.RootCAs, "the cluster's own CA")
	assert.False(t, tlsCfg.InsecureSkipVerify)
	assert.Nil(t, opts.Credentials)
	assert.NotNil(t, opts.ConnectionOptions.GrpcCompression)

	cloud, err := config.LoadFrom(map[string]string{
		"TEMPORAL_ADDRESS": "eu-central-1.aws.api.temporal.io:7233", "TEMPORAL_NAMESPACE": "lifecycle.a1b2c",
		"TEMPORAL_API_KEY": "key-from-the-cloud-ui",
	})
	require.NoError(t, err)
	assert.NotContains(t, cloud.Temporal.Connection.APIKey.String(), "key-from", "the key never prints")
	opts, err = cloud.Temporal.ClientOptions()
	require.NoError(t, err)
	assert.NotNil(t, opts.ConnectionOptions.TLS, "an API key turns TLS on (Temporal Cloud)")
	assert.NotNil(t, opts.Credentials)
	assert.Equal(t, "lifecycle.a1b2c", opts.Namespace)

	plain, err := config.LoadFrom(map[string]string{})
	require.NoError(t, err)
	opts, err = plain.Temporal.ClientOptions()
	require.NoError(t, err)
	assert.Nil(t, opts.ConnectionOptions.TLS, "the local stack is plain")
}

func TestTemporalTLSErrorsNameTheVariable(t *testing.T) {
	f := tlstest.New(t, "temporal.test")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a certificate"), 0o600))
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"tls flag", map[string]string{"TEMPORAL_TLS": "sometimes"}, `TEMPORAL_TLS="sometimes": must be true or false`},
		{"missing file", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": f.ClientKey},
			"TEMPORAL_TLS_CLIENT_CERT_PATH: open /nonexistent/client.pem"},
		{"cert without key", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": f.ClientCert}, "mTLS needs both"},
		{"key of another cert", map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": f.ClientCert, "TEMPORAL_TLS_CLIENT_KEY_PATH": f.ServerKey},
			"not a certificate and its private key"},
		{"path and data", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": f.CA, "TEMPORAL_TLS_SERVER_CA_CERT_DATA": "x"},
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH and TEMPORAL_TLS_SERVER_CA_CERT_DATA: set one, not both"},
		{"CA without certificate", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": junk}, "TEMPORAL_TLS_SERVER_CA_CERT_*: holds no PEM certificate"},
		{"API key in clear", map[string]string{"TEMPORAL_API_KEY": "secret-key-value", "TEMPORAL_TLS": "false"}, "must not travel unencrypted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadFrom(tc.env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret-key-value")
		})
	}
}
