// Package api is the HTTP API through which CRM and product systems push
// signups and events into customer journeys, read a journey's state, and
// through which customers unsubscribe with one click (RFC 8058).
//
// Every /v1 endpoint except the unsubscribe pair is authenticated with an
// HMAC-SHA256 signature over a timestamp and the raw body (see Sign); the
// unsubscribe endpoints are authenticated by the signed token in the link
// (email.Signer). Answers are JSON; errors are an ErrorResponse naming the
// offending field. A 202 is given only after Temporal accepted the
// signal-with-start; when Temporal cannot be reached the answer is 503 with
// Retry-After, so the caller retries and nothing is dropped silently.
//
// docs/api.md is the reference for callers; api/openapi.yaml is the
// machine-readable description, tested against the routes of this package.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/erasure"
	"github.com/acme/lifecycle/workflows"
)

// Body size limits.
const (
	// MaxEventsBody bounds the body of POST /v1/events (a batch of up to
	// MaxBatch events).
	MaxEventsBody = 1 << 20
	// MaxBody bounds every other request body.
	MaxBody = 64 << 10
	// MaxBatch is the most events one POST /v1/events may carry.
	MaxBatch = 1000
)

// Defaults of Options.
const (
	DefaultTemporalTimeout = 10 * time.Second
	DefaultRetryAfter      = 5 * time.Second
	DefaultReplayCacheSize = 100_000
	// DefaultReplayTimeout is generous for one INSERT on a healthy
	// database and short enough that a database outage does not stall
	// signups and events for long.
	DefaultReplayTimeout = time.Second
	// sendConcurrency bounds the signal-with-start calls one batch makes
	// at once (one per customer in the batch).
	sendConcurrency = 16
)

// Options configure the handler that New returns.
type Options struct {
	// Starter sends signups and events (signal-with-start); its Client,
	// TaskQueue and CampaignID must be set.
	Starter workflows.Starter
	// Client answers journey queries and the readiness check; nil uses
	// Starter.Client.
	Client client.Client
	// CRM records unsubscribes, is pinged by /readyz, and remembers used
	// request signatures (table api_replays) so that a replay is refused
	// by every replica and after a restart. Nil: unsubscribes answer 503,
	// /readyz reports the CRM as not configured, and replays are only
	// noticed by the process that saw the original.
	CRM *crm.Store
	// Signer verifies the tokens of unsubscribe links.
	Signer email.Signer
	// Secret is the shared API secret (API_SECRET) that callers sign
	// requests with. Required.
	Secret []byte
	// Eraser runs DELETE /v1/customers/{id} and erase events; nil answers
	// them 503.
	Eraser *erasure.Eraser
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Now is the clock for signature timestamps; nil is time.Now.
	Now func() time.Time
	// TemporalTimeout bounds each call to Temporal; 0 is
	// DefaultTemporalTimeout.
	TemporalTimeout time.Duration
	// RetryAfter is announced in the Retry-After header of 503 answers; 0
	// is DefaultRetryAfter.
	RetryAfter time.Duration
	// ReplayCacheSize bounds how many recently used signatures are
	// remembered in memory; 0 is DefaultReplayCacheSize.
	ReplayCacheSize int
	// ReplayTimeout bounds each check of a signature in the CRM database;
	// past it the request is checked in memory only (see docs/api.md).
	// 0 is DefaultReplayTimeout.
	ReplayTimeout time.Duration
}

// server holds the handlers' dependencies.
type server struct {
	starter         workflows.Starter
	client          client.Client
	crm             *crm.Store
	eraser          *erasure.Eraser
	signer          email.Signer
	secret          []byte
	log             *slog.Logger
	now             func() time.Time
	temporalTimeout time.Duration
	retryAfter      time.Duration
	replays         *replayCache
	shared          *sharedReplays // the replay check in the CRM; nil without one
	mux             *http.ServeMux
	// routes are the patterns registered on mux, in registration order
	// (the OpenAPI test compares them with api/openapi.yaml).
	routes []string
}

// New returns the API's handler. It panics when Options.Secret is empty or
// no Temporal client is given: both are programming errors that
// config.Load rules out.
func New(o Options) http.Handler {
	s := newServer(o)
	return s.logRequests(s.recoverPanics(s.mux))
}

func newServer(o Options) *server {
	if len(o.Secret) == 0 {
		panic("api.New: Options.Secret is empty")
	}
	if o.Starter.Client == nil {
		panic("api.New: Options.Starter.Client is nil")
	}
	s := &server{
		starter: o.Starter, client: o.Client, crm: o.CRM, eraser: o.Eraser, signer: o.Signer,
		secret: append([]byte(nil), o.Secret...), log: o.Logger, now: o.Now,
		temporalTimeout: o.TemporalTimeout, retryAfter: o.RetryAfter,
		mux: http.NewServeMux(),
	}
	if s.client == nil {
		s.client = o.Starter.Client
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.temporalTimeout <= 0 {
		s.temporalTimeout = DefaultTemporalTimeout
	}
	if s.retryAfter <= 0 {
		s.retryAfter = DefaultRetryAfter
	}
	size := o.ReplayCacheSize
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	s.replays = newReplayCache(size)
	if o.CRM != nil {
		timeout := o.ReplayTimeout
		if timeout <= 0 {
			timeout = DefaultReplayTimeout
		}
		s.shared = &sharedReplays{store: o.CRM, timeout: timeout, log: s.log}
	}

	s.handle("POST /v1/signups", s.authenticated(MaxBody, s.postSignup))
	s.handle("POST /v1/events", s.authenticated(MaxEventsBody, s.postEvents))
	s.handle("GET /v1/customers/{id}/journey", s.authenticated(MaxBody, s.getJourney))
	s.handle("DELETE /v1/customers/{id}", s.authenticated(MaxBody, s.deleteCustomer))
	s.handle("POST /v1/customers/{id}/tags", s.authenticated(MaxBody, s.postTags))
	s.handle("GET /v1/unsubscribe", s.getUnsubscribe)
	s.handle("POST /v1/unsubscribe", s.postUnsubscribe)
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	return s
}

func (s *server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Server returns an http.Server for h with the timeouts the API needs: a
// slow or idle client cannot hold a connection for long, and a batch of
// 1,000 events (up to 16 signal-with-starts at a time, each bounded by
// Options.TemporalTimeout) still fits into the write timeout.
func Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// statusWriter remembers the status and size of an answer for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes one structured line per request. It logs the route
// pattern and the path but never the query string (unsubscribe tokens),
// headers (signatures) or bodies.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		level := slog.LevelInfo
		switch {
		case sw.status >= 500:
			level = slog.LevelError
		case sw.status >= 400:
			level = slog.LevelWarn
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
			level = slog.LevelDebug
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Int("bytes", sw.bytes),
			slog.Int64("request_bytes", r.ContentLength),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// recoverPanics turns a panicking handler into a 500 and a log line.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// temporalContext bounds a write to Temporal. It is not cancelled when the
// caller hangs up: a batch is attempted in full rather than cut off
// half-way (the outcome of a cancelled signal is unknown either way).
func (s *server) temporalContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), s.temporalTimeout)
}

// setRetryAfter announces when a caller should retry a 503.
func (s *server) setRetryAfter(w http.ResponseWriter) {
	secs := int((s.retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}
