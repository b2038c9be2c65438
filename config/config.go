// Package config loads the typed configuration of every process (worker,
// starter, API) from environment variables, with defaults that match the
// local stack started by scripts/stack.sh.
//
// Parsing is done by github.com/caarlos0/env; validation that needs more than
// a type (ports in range, known TLS modes, a positive time scale) is ours and
// names the variable and the bad value in its error. Secrets are typed
// Secret so that printing a Config never shows them.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/privacy"
)

// Secret is a string that never prints its value.
type Secret string

// String hides the value; use Value to read it.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v as well.
func (s Secret) GoString() string { return s.String() }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// Config is everything a process of this project can be told from outside.
type Config struct {
	Temporal Temporal
	// DatabaseURL is the CRM database (PostgreSQL).
	DatabaseURL Secret `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/lifecycle?sslmode=disable"`
	SMTP        SMTP
	// HTTPAddr is where the HTTP API listens.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// MetricsAddr is where the worker serves Prometheus metrics; empty disables.
	MetricsAddr string `env:"METRICS_ADDR" envDefault:"127.0.0.1:9090"`
	// PublicBaseURL is the address customers reach the API at; unsubscribe
	// links in emails point here.
	PublicBaseURL string `env:"PUBLIC_BASE_URL" envDefault:"http://127.0.0.1:8080"`
	// UnsubscribeSecret signs the per-customer one-click unsubscribe links.
	UnsubscribeSecret Secret `env:"UNSUBSCRIBE_SECRET" envDefault:"dev-only-unsubscribe-secret"`
	// APISecret authenticates callers of the HTTP API.
	APISecret Secret `env:"API_SECRET" envDefault:"dev-only-api-secret"`
	// Payload says how personal data in Temporal payloads is encrypted.
	Payload Payload
	// Codec configures the codec server the API serves for the Temporal
	// Web UI and CLI.
	Codec Codec
	// CampaignDir holds the campaign definition files (*.yaml). Empty uses
	// the campaigns built into the binary.
	CampaignDir string `env:"CAMPAIGN_DIR"`
	// TimeScale compresses journey time: with 86400, one journey day lasts
	// one second. 1 is real time. The demo uses a large value.
	TimeScale float64 `env:"TIME_SCALE" envDefault:"1"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
}

// Temporal says where the workflow engine is.
type Temporal struct {
	Address   string `env:"TEMPORAL_ADDRESS" envDefault:"127.0.0.1:7233"`
	Namespace string `env:"TEMPORAL_NAMESPACE" envDefault:"default"`
	TaskQueue string `env:"TEMPORAL_TASK_QUEUE" envDefault:"lifecycle"`
	// GRPCCompression is gzip, none, or auto: none for a server on this
	// machine (a loopback address), where compressing costs CPU and saves
	// nothing, and gzip otherwise (the SDK's default).
	GRPCCompression string `env:"TEMPORAL_GRPC_COMPRESSION" envDefault:"auto"`
	// WorkflowCacheSize is how many workflows a worker keeps in memory
	// (the SDK's sticky cache, 10,000 by default). A journey waits days
	// between steps, so a small cache costs a rare replay and bounds the
	// worker's memory however many journeys wait (~80 KiB each).
	WorkflowCacheSize int `env:"WORKER_CACHE_SIZE" envDefault:"2000"`
	// WorkflowTaskPollers is how many long polls for workflow tasks a
	// worker keeps open (split between its sticky queue and the shared
	// one; the SDK's default is 2, and the SDK needs at least 2).
	WorkflowTaskPollers int `env:"WORKER_WORKFLOW_POLLERS" envDefault:"2"`
	// Connection is TLS, mTLS and the API key of a secured cluster or
	// Temporal Cloud (temporal_tls.go).
	Connection Connection
}

// DevPayloadKEK is the key-encryption key of the local stack. It is public,
// so data keys wrapped by it protect nothing: set PAYLOAD_KEK (or
// PAYLOAD_KEK_FILE) anywhere else.
const DevPayloadKEK = "ZGV2LW9ubHkgcGF5bG9hZCBrZXksIG5vdCBzZWNyZXQ="

// Payload is the encryption of personal data in Temporal payloads (package
// privacy, docs/privacy.md): each customer's payloads are encrypted with a
// data key of their own, stored in the CRM database wrapped by the
// key-encryption key (KEK) given here.
type Payload struct {
	// KEK is the key-encryption key: the standard base64 encoding of 32
	// random bytes (`openssl rand -base64 32`).
	KEK Secret `env:"PAYLOAD_KEK" envDefault:"ZGV2LW9ubHkgcGF5bG9hZCBrZXksIG5vdCBzZWNyZXQ="`
	// KEKFile, when set, names a file that holds the KEK (a mounted
	// secret); it takes precedence over PAYLOAD_KEK.
	KEKFile string `env:"PAYLOAD_KEK_FILE"`
	// PreviousKEKs are earlier KEKs (comma-separated), still accepted to
	// unwrap data keys until `starter rotate-kek` has rewrapped them all
	// with the current one.
	PreviousKEKs Secret `env:"PAYLOAD_KEK_PREVIOUS"`
}

// Keyring parses the KEKs; errors name the variable, never the value.
func (p Payload) Keyring() (privacy.Keyring, error) {
	current, name := p.KEK.Value(), "PAYLOAD_KEK"
	if p.KEKFile != "" {
		b, err := os.ReadFile(p.KEKFile)
		if err != nil {
			return privacy.Keyring{}, fmt.Errorf("PAYLOAD_KEK_FILE: %w", err)
		}
		current, name = strings.TrimSpace(string(b)), "PAYLOAD_KEK_FILE"
	}
	kek, err := privacy.ParseKEK(current)
	if err != nil {
		return privacy.Keyring{}, fmt.Errorf("%s: %w", name, err)
	}
	ring := privacy.Keyring{Current: kek}
	for i, v := range strings.Split(p.PreviousKEKs.Value(), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		prev, err := privacy.ParseKEK(v)
		if err != nil {
			return privacy.Keyring{}, fmt.Errorf("PAYLOAD_KEK_PREVIOUS (key %d): %w", i+1, err)
		}
		ring.Previous = append(ring.Previous, prev)
	}
	return ring, nil
}

// Codec configures the codec server (privacy.CodecServer) the API serves
// at /codec, so that people allowed to can read encrypted histories in the
// Temporal Web UI and CLI.
type Codec struct {
	// Token, when set, must be sent as "Authorization: Bearer <token>".
	// Empty: only clients on this machine (loopback) are served.
	Token Secret `env:"CODEC_TOKEN"`
	// Origins are the Web UI origins allowed to call it from the browser.
	Origins []string `env:"CODEC_CORS_ORIGINS" envSeparator:"," envDefault:"http://127.0.0.1:8233,http://localhost:8233"`
}

// GRPCCompressions lists the accepted TEMPORAL_GRPC_COMPRESSION values.
var GRPCCompressions = []string{"auto", "gzip", "none"}

// Compress reports whether requests to Temporal are gzip-compressed.
func (t Temporal) Compress() bool {
	switch t.GRPCCompression {
	case "gzip":
		return true
	case "none":
		return false
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// ClientOptions are the Temporal client options every process of this
// project dials with, TLS and credentials included; callers add their
// logger and metrics. A configuration that passed Validate always gives
// options.
func (t Temporal) ClientOptions() (client.Options, error) {
	var compression client.GrpcCompression = &client.GrpcCompressionGzip{}
	if !t.Compress() {
		compression = &client.GrpcCompressionNone{}
	}
	opts := client.Options{
		HostPort: t.Address, Namespace: t.Namespace,
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: compression},
	}
	if err := t.Connection.apply(&opts); err != nil {
		return client.Options{}, err
	}
	return opts, nil
}

// SMTP says how email leaves the system.
type SMTP struct {
	Host     string `env:"SMTP_HOST" envDefault:"127.0.0.1"`
	Port     int    `env:"SMTP_PORT" envDefault:"1025"`
	Username string `env:"SMTP_USERNAME"`
	Password Secret `env:"SMTP_PASSWORD"`
	// TLSMode is none, starttls (required), opportunistic or tls (implicit).
	TLSMode  string `env:"SMTP_TLS_MODE" envDefault:"none"`
	From     string `env:"SMTP_FROM" envDefault:"hello@lifecycle.example"`
	FromName string `env:"SMTP_FROM_NAME" envDefault:"Lifecycle Demo"`
	// Connections is how many SMTP connections a worker keeps open and
	// sends on in parallel: 8 keeps a local Mailpit busy (4 left it waiting
	// on the round trips). Providers limit concurrent connections, so lower
	// it to what yours allows.
	Connections int           `env:"SMTP_CONNECTIONS" envDefault:"8"`
	Timeout     time.Duration `env:"SMTP_TIMEOUT" envDefault:"15s"`
}

// TLSModes lists the accepted SMTP_TLS_MODE values.
var TLSModes = []string{"none", "opportunistic", "starttls", "tls"}

// Load reads the environment and validates it.
func Load() (Config, error) {
	return parse(env.Options{})
}

// LoadFrom reads the given variables instead of the process environment
// (tests, and tools that compose environments).
func LoadFrom(vars map[string]string) (Config, error) {
	return parse(env.Options{Environment: vars})
}

func parse(opts env.Options) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, opts); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", nameVariables(err))
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks what types alone cannot; each error names the variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, value, why string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, why))
	}
	if err := hostPort(c.Temporal.Address); err != nil {
		bad("TEMPORAL_ADDRESS", c.Temporal.Address, err.Error())
	}
	if strings.TrimSpace(c.Temporal.Namespace) == "" {
		bad("TEMPORAL_NAMESPACE", c.Temporal.Namespace, "must not be empty")
	}
	if strings.TrimSpace(c.Temporal.TaskQueue) == "" {
		bad("TEMPORAL_TASK_QUEUE", c.Temporal.TaskQueue, "must not be empty")
	}
	if !slices.Contains(GRPCCompressions, c.Temporal.GRPCCompression) {
		bad("TEMPORAL_GRPC_COMPRESSION", c.Temporal.GRPCCompression, "must be one of "+strings.Join(GRPCCompressions, ", "))
	}
	if c.Temporal.WorkflowCacheSize < 1 {
		bad("WORKER_CACHE_SIZE", strconv.Itoa(c.Temporal.WorkflowCacheSize), "must be at least 1")
	}
	if err := c.Temporal.Connection.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Temporal.WorkflowTaskPollers < 2 {
		bad("WORKER_WORKFLOW_POLLERS", strconv.Itoa(c.Temporal.WorkflowTaskPollers), "must be at least 2 (one for the worker's sticky queue, one for the shared one)")
	}
	if u, err := url.Parse(c.DatabaseURL.Value()); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The value may hold a password: name the variable, not the value.
		errs = append(errs, errors.New("DATABASE_URL: must be a postgres:// URL"))
	}
	if c.SMTP.Host == "" {
		bad("SMTP_HOST", c.SMTP.Host, "must not be empty")
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		bad("SMTP_PORT", strconv.Itoa(c.SMTP.Port), "must be a port between 1 and 65535")
	}
	if !slices.Contains(TLSModes, c.SMTP.TLSMode) {
		bad("SMTP_TLS_MODE", c.SMTP.TLSMode, "must be one of "+strings.Join(TLSModes, ", "))
	}
	// The mailer's rule for the sender (email.NewSender), the customer's
	// rule for an address: found here, the worker refuses to start with a
	// message that names the variable.
	var fe *customer.FieldError
	if errors.As(errors.Join(customer.CheckLine("", c.SMTP.From), customer.CheckEmail("", strings.TrimSpace(c.SMTP.From))), &fe) {
		bad("SMTP_FROM", c.SMTP.From, "must be an email address: "+fe.Problem)
	}
	if strings.ContainsAny(c.SMTP.FromName, "\r\n") {
		bad("SMTP_FROM_NAME", c.SMTP.FromName, "must not contain line breaks")
	}
	if c.SMTP.Connections < 1 {
		bad("SMTP_CONNECTIONS", strconv.Itoa(c.SMTP.Connections), "must be at least 1")
	}
	if c.SMTP.Timeout <= 0 {
		bad("SMTP_TIMEOUT", c.SMTP.Timeout.String(), "must be positive")
	}
	if err := hostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", c.HTTPAddr, err.Error())
	}
	if c.MetricsAddr != "" {
		if err := hostPort(c.MetricsAddr); err != nil {
			bad("METRICS_ADDR", c.MetricsAddr, err.Error())
		}
	}
	if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("PUBLIC_BASE_URL", c.PublicBaseURL, "must be an http(s) URL")
	}
	if len(c.UnsubscribeSecret.Value()) < 16 {
		errs = append(errs, errors.New("UNSUBSCRIBE_SECRET: must be at least 16 characters"))
	}
	if len(c.APISecret.Value()) < 16 {
		errs = append(errs, errors.New("API_SECRET: must be at least 16 characters"))
	}
	if _, err := c.Payload.Keyring(); err != nil {
		errs = append(errs, err)
	}
	for _, o := range c.Codec.Origins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			bad("CODEC_CORS_ORIGINS", o, "each origin must be scheme://host[:port], as browsers send it")
		}
	}
	if !(c.TimeScale >= 1) {
		bad("TIME_SCALE", strconv.FormatFloat(c.TimeScale, 'g', -1, 64), "must be a number >= 1 (1 is real time)")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error")
	}
	return errors.Join(errs...)
}

func hostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port must be a number between 0 and 65535")
	}
	return nil
}

// nameVariables rewrites the library's parse errors, which name the Go
// field ("Port"), so that they name the environment variable and the value
// instead ("SMTP_PORT: ..."). Field names are unique across Config.
func nameVariables(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := map[string]string{}
	collectVars(reflect.TypeOf(Config{}), vars)
	out := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && vars[pe.Name] != "" {
			out = append(out, fmt.Errorf("%s: must be a %s: %w", vars[pe.Name], pe.Type, pe.Err))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func collectVars(t reflect.Type, vars map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" && f.Type != reflect.TypeOf(time.Duration(0)) {
			collectVars(f.Type, vars)
			continue
		}
		if name := f.Tag.Get("env"); name != "" {
			vars[f.Name] = name
		}
	}
}
