package config

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

func TestDefaultsMatchTheLocalStack(t *testing.T) {
	c, err := LoadFrom(map[string]string{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7233", c.Temporal.Address)
	assert.Equal(t, "default", c.Temporal.Namespace)
	assert.Equal(t, "lifecycle", c.Temporal.TaskQueue)
	assert.Equal(t, 1025, c.SMTP.Port)
	assert.Equal(t, "none", c.SMTP.TLSMode)
	assert.Equal(t, 1.0, c.TimeScale)
}

func TestOverridesFromEnvironment(t *testing.T) {
	c, err := LoadFrom(map[string]string{
		"TEMPORAL_ADDRESS": "temporal:7233", "SMTP_PORT": "2525", "SMTP_TLS_MODE": "starttls",
		"TIME_SCALE": "21600", "DATABASE_URL": "postgres://u:p@db:5432/crm",
	})
	require.NoError(t, err)
	assert.Equal(t, "temporal:7233", c.Temporal.Address)
	assert.Equal(t, 2525, c.SMTP.Port)
	assert.Equal(t, "starttls", c.SMTP.TLSMode)
	assert.Equal(t, 21600.0, c.TimeScale)
	assert.Equal(t, "postgres://u:p@db:5432/crm", c.DatabaseURL.Value())
}

func TestErrorsNameTheVariableAndValue(t *testing.T) {
	cases := map[string][2]string{
		"SMTP_PORT":                 {"70000", `SMTP_PORT="70000"`},
		"SMTP_TLS_MODE":             {"maybe", `SMTP_TLS_MODE="maybe"`},
		"TEMPORAL_ADDRESS":          {"nohostport", `TEMPORAL_ADDRESS="nohostport"`},
		"TIME_SCALE":                {"0.5", `TIME_SCALE="0.5"`},
		"LOG_LEVEL":                 {"loud", `LOG_LEVEL="loud"`},
		"SMTP_FROM":                 {"not-an-address", `SMTP_FROM="not-an-address"`},
		"PUBLIC_BASE_URL":           {"ftp://x", `PUBLIC_BASE_URL="ftp://x"`},
		"TEMPORAL_GRPC_COMPRESSION": {"zstd", `TEMPORAL_GRPC_COMPRESSION="zstd"`},
		"WORKER_CACHE_SIZE":         {"0", `WORKER_CACHE_SIZE="0"`},
		"WORKER_WORKFLOW_POLLERS":   {"1", `WORKER_WORKFLOW_POLLERS="1"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFrom(map[string]string{name: tc[0]})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc[1])
		})
	}
}

func TestGRPCCompressionAutoIsOffOnlyForThisMachine(t *testing.T) {
	cases := []struct {
		address, mode string
		compress      bool
	}{
		{"127.0.0.1:7233", "auto", false},
		{"localhost:7233", "auto", false},
		{"[::1]:7233", "auto", false},
		{"temporal:7233", "auto", true},
		{"acme.a1b2c.tmprl.cloud:7233", "auto", true},
		{"10.0.0.7:7233", "auto", true},
		{"127.0.0.1:7233", "gzip", true},
		{"acme.a1b2c.tmprl.cloud:7233", "none", false},
	}
	for _, tc := range cases {
		c, err := LoadFrom(map[string]string{"TEMPORAL_ADDRESS": tc.address, "TEMPORAL_GRPC_COMPRESSION": tc.mode})
		require.NoError(t, err)
		assert.Equal(t, tc.compress, c.Temporal.Compress(), "%s %s", tc.address, tc.mode)
		opts, err := c.Temporal.ClientOptions()
		require.NoError(t, err)
		_, none := opts.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone)
		assert.Equal(t, !tc.compress, none, "%s %s: client options", tc.address, tc.mode)
	}
}

func TestUnparseableValueNamesTheVariable(t *testing.T) {
	_, err := LoadFrom(map[string]string{"SMTP_PORT": "twenty-five"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SMTP_PORT")
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := LoadFrom(map[string]string{
		"SMTP_PASSWORD": "hunter2-smtp", "API_SECRET": "api-secret-0123456789",
		"UNSUBSCRIBE_SECRET": "unsub-secret-0123456789", "DATABASE_URL": "postgres://u:dbpass@db/crm",
	})
	require.NoError(t, err)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		for _, secret := range []string{"hunter2-smtp", "api-secret-0123456789", "unsub-secret-0123456789", "dbpass"} {
			assert.False(t, strings.Contains(out, secret), "format %s printed a secret", format)
		}
	}
}

func TestBadDatabaseURLDoesNotEchoIt(t *testing.T) {
	_, err := LoadFrom(map[string]string{"DATABASE_URL": "mysql://u:topsecret@db/x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DATABASE_URL")
	assert.NotContains(t, err.Error(), "topsecret")
}

// SMTP_FROM follows the one rule for an address (customer.CheckEmail),
// which the mailer applies too: what the mailer would refuse stops the
// worker here, with the variable named.
func TestSMTPFromIsABareAddress(t *testing.T) {
	for _, from := range []string{"Demo <hello@lifecycle.example>", "hello@localhost", "hello@lifecycle.example\r\nBcc: x@y.example"} {
		_, err := LoadFrom(map[string]string{"SMTP_FROM": from})
		if assert.Error(t, err, from) {
			assert.Contains(t, err.Error(), "SMTP_FROM=")
		}
	}
	c, err := LoadFrom(map[string]string{"SMTP_FROM": "news@acme.example"})
	require.NoError(t, err)
	assert.Equal(t, "news@acme.example", c.SMTP.From)
}

func TestPayloadKEKs(t *testing.T) {
	const other = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	t.Run("the dev default parses", func(t *testing.T) {
		c, err := LoadFrom(map[string]string{})
		require.NoError(t, err)
		ring, err := c.Payload.Keyring()
		require.NoError(t, err)
		assert.Len(t, ring.Current.ID(), 16)
		assert.Empty(t, ring.Previous)
	})
	t.Run("a bad key is named, its value is not", func(t *testing.T) {
		_, err := LoadFrom(map[string]string{"PAYLOAD_KEK": "c2hvcnQ="})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "PAYLOAD_KEK")
		assert.NotContains(t, err.Error(), "c2hvcnQ=")
		_, err = LoadFrom(map[string]string{"PAYLOAD_KEK_PREVIOUS": other + ",nonsense"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "PAYLOAD_KEK_PREVIOUS (key 2)")
	})
	t.Run("the file wins over the variable", func(t *testing.T) {
		file := t.TempDir() + "/kek"
		require.NoError(t, os.WriteFile(file, []byte(other+"\n"), 0o600))
		c, err := LoadFrom(map[string]string{"PAYLOAD_KEK_FILE": file, "PAYLOAD_KEK_PREVIOUS": DevPayloadKEK})
		require.NoError(t, err)
		ring, err := c.Payload.Keyring()
		require.NoError(t, err)
		dev, err := LoadFrom(map[string]string{})
		require.NoError(t, err)
		devRing, err := dev.Payload.Keyring()
		require.NoError(t, err)
		assert.NotEqual(t, devRing.Current.ID(), ring.Current.ID())
		require.Len(t, ring.Previous, 1)
		assert.Equal(t, devRing.Current.ID(), ring.Previous[0].ID())
		_, err = LoadFrom(map[string]string{"PAYLOAD_KEK_FILE": file + ".missing"})
		assert.ErrorContains(t, err, "PAYLOAD_KEK_FILE")
	})
	t.Run("codec origins are browser origins", func(t *testing.T) {
		_, err := LoadFrom(map[string]string{"CODEC_CORS_ORIGINS": "http://ui.example:8080/path"})
		assert.ErrorContains(t, err, "CODEC_CORS_ORIGINS")
	})
}
