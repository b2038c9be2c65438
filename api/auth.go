package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Authentication headers. The signature is
//
//	X-Lifecycle-Signature: v1=hex(HMAC-SHA256(API_SECRET, "<timestamp>.<raw body>"))
//
// where <timestamp> is the value of X-Lifecycle-Timestamp exactly as sent
// and <raw body> the exact bytes sent (empty for a GET). The timestamp is
// unix seconds: an integer ("1700000000"), or with a fraction of up to nine
// digits ("1700000000.123456789"). A signature is accepted once, and the
// same body at the same timestamp has the same signature: a caller that
// may send identical requests within one second (polling a journey,
// retrying quickly) sends fractional timestamps, as Sign does.
const (
	HeaderTimestamp = "X-Lifecycle-Timestamp"
	HeaderSignature = "X-Lifecycle-Signature"
	// SignatureTolerance is how far a request's timestamp may be from the
	// server's clock, either way; signatures are remembered this long
	// to reject replays.
	SignatureTolerance = 5 * time.Minute
	signatureVersion   = "v1="
)

// Sign returns the authentication headers of a request with this body sent
// at ts. Each request (each retry, too) must be signed afresh: a signature
// is accepted once. The timestamp carries ts's nanoseconds when it has any,
// so that identical requests a moment apart differ.
func Sign(secret []byte, ts time.Time, body []byte) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	if ns := ts.Nanosecond(); ns != 0 {
		stamp += fmt.Sprintf(".%09d", ns)
	}
	h := http.Header{}
	h.Set(HeaderTimestamp, stamp)
	h.Set(HeaderSignature, signatureVersion+hex.EncodeToString(mac(secret, stamp, body)))
	return h
}

func mac(secret []byte, stamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(stamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// authenticated reads the body (at most limit bytes), checks the signature,
// timestamp and replay cache, and hands the body on to next as r.Body.
//
// Order of checks: the headers are looked at before the body is read (a
// request without them costs nothing); then the size limit (413), the
// signature (401), the timestamp (401) and the replay cache (401).
func (s *server) authenticated(limit int64, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stamp := r.Header.Get(HeaderTimestamp)
		sig := r.Header.Get(HeaderSignature)
		if stamp == "" || sig == "" {
			s.unauthorized(w, "missing "+HeaderTimestamp+" or "+HeaderSignature+" header")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, ErrorResponse{
					Error: "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes",
				})
				return
			}
			writeError(w, http.StatusBadRequest, ErrorResponse{Error: "could not read the request body"})
			return
		}
		if status, msg := s.verify(r.Context(), stamp, sig, body); status != 0 {
			if status == http.StatusServiceUnavailable {
				s.unavailable(w, msg)
				return
			}
			s.unauthorized(w, msg)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next(w, r)
	}
}

// verify returns the status and the reason of refusing a request, or 0
// when it is authentic and fresh.
func (s *server) verify(ctx context.Context, stamp, sig string, body []byte) (int, string) {
	const unauthorized = http.StatusUnauthorized
	ts, ok := parseStamp(stamp)
	if !ok {
		return unauthorized, HeaderTimestamp + " must be unix seconds (digits, optionally with a fraction of up to 9 digits)"
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(sig), signatureVersion)
	if !ok {
		return unauthorized, HeaderSignature + " must be v1=<hex HMAC-SHA256>"
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return unauthorized, HeaderSignature + " must be v1=<hex HMAC-SHA256>"
	}
	if !hmac.Equal(got, mac(s.secret, stamp, body)) {
		return unauthorized, "bad signature"
	}
	// The timestamp is checked after the signature so that an attacker
	// learns nothing about the clock from unsigned requests.
	now := s.now()
	if d := now.Sub(ts); d > SignatureTolerance || d < -SignatureTolerance {
		return unauthorized, "timestamp is more than 5 minutes away from the server's clock"
	}
	// After ts+tolerance the timestamp check refuses the signature anyway,
	// so the caches may forget it then.
	key, expires := hex.EncodeToString(got), ts.Add(SignatureTolerance+time.Second)
	const replayMsg = "replayed: this signature was already used; sign every request afresh"
	// The in-memory cache comes first: a replay to the same process costs
	// no database round trip, and it is what still refuses replays while
	// the database is unreachable.
	switch s.replays.add(key, expires, now) {
	case replayed:
		return unauthorized, replayMsg
	case cacheFull:
		return http.StatusServiceUnavailable, "too many recent requests to remember their signatures; retry later"
	}
	if s.shared != nil && !s.shared.use(ctx, key, expires, now) {
		return unauthorized, replayMsg
	}
	return 0, ""
}

// parseStamp reads "1700000000" or "1700000000.5" (up to 9 fractional
// digits); nothing else (no sign, exponent or spaces).
func parseStamp(stamp string) (time.Time, bool) {
	secStr, frac, hasFrac := strings.Cut(stamp, ".")
	if !allDigits(secStr) || len(secStr) > 12 || (hasFrac && (!allDigits(frac) || len(frac) > 9)) {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nanos int64
	if hasFrac {
		nanos, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Unix(secs, nanos), true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (s *server) unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `HMAC-SHA256 realm="lifecycle", headers="`+HeaderTimestamp+` `+HeaderSignature+`"`)
	writeError(w, http.StatusUnauthorized, ErrorResponse{Error: msg})
}

type replayResult int

const (
	fresh replayResult = iota
	replayed
	cacheFull
)

// replayCache remembers the signatures used within the tolerance window,
// in memory and per process. It is the first-level check; with a CRM
// store configured, sharedReplays makes replays visible across replicas
// and restarts.
//
// It is bounded: when max signatures that have not expired are remembered,
// new requests are refused (fail closed) rather than forgetting a
// signature that could then be replayed.
type replayCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time // signature -> when it may be forgotten
	max       int
	lastSweep time.Time
}

func newReplayCache(maxEntries int) *replayCache {
	return &replayCache{seen: map[string]time.Time{}, max: maxEntries}
}

// add records sig until expires and says whether it was new.
func (c *replayCache) add(sig string, expires, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[sig]; ok && now.Before(exp) {
		return replayed
	}
	if len(c.seen) >= c.max || now.Sub(c.lastSweep) > 10*time.Second {
		c.sweep(now)
	}
	if len(c.seen) >= c.max {
		return cacheFull
	}
	c.seen[sig] = expires
	return fresh
}

func (c *replayCache) sweep(now time.Time) {
	for k, exp := range c.seen {
		if !now.Before(exp) {
			delete(c.seen, k)
		}
	}
	c.lastSweep = now
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// replayStore keeps used signatures where every API replica sees them, and
// across restarts (crm.Store, table api_replays).
type replayStore interface {
	UseSignature(ctx context.Context, sig string, expires time.Time) (fresh bool, err error)
	SweepSignatures(ctx context.Context, before time.Time, limit int) (int, error)
}

const (
	// replayRetryAfter is how long signatures are checked in memory only
	// after the database failed to answer, so that an outage costs one
	// timeout (and one warning) per period rather than per request.
	replayRetryAfter = 10 * time.Second
	// replaySweepEvery is how often a process deletes expired signatures.
	replaySweepEvery = time.Minute
	// replaySweepGrace keeps rows this long past their expiry: another
	// replica whose clock is behind ours may still accept the timestamp.
	replaySweepGrace = time.Minute
	// replaySweepBatch bounds one DELETE; a sweep repeats it while it
	// deletes full batches, up to replaySweepMaxBatches.
	replaySweepBatch      = 1000
	replaySweepMaxBatches = 100
	replaySweepTimeout    = 30 * time.Second
)

// sharedReplays checks signatures against the replay store.
//
// When the store cannot answer (PostgreSQL down or slow, or the table not
// migrated yet) the request is accepted on the strength of the in-memory
// cache alone and a warning is logged: signups and events go to Temporal,
// not to PostgreSQL, and must keep flowing through a database outage. The
// price is that during the outage a replay sent to another replica, or to
// this one after a restart, is accepted; that does little harm for what
// these endpoints do (a signup is a profile update the caller already made
// — at worst it puts back the profile it carried — journeys drop event ids
// they have seen, a journey read changes nothing).
type sharedReplays struct {
	store   replayStore
	timeout time.Duration
	log     *slog.Logger
	// sweeps tracks the background sweep, so that tests can wait for it.
	sweeps sync.WaitGroup

	mu        sync.Mutex
	downUntil time.Time // memory only until then (the API's clock)
	down      bool      // the last attempt failed (log the recovery once)
	lastSweep time.Time
	sweeping  bool
}

// use records sig in the store and reports whether it was fresh there, or
// true when the store is unavailable.
func (r *sharedReplays) use(ctx context.Context, sig string, expires, now time.Time) bool {
	r.mu.Lock()
	skip := r.down && now.Before(r.downUntil)
	r.mu.Unlock()
	if skip {
		return true
	}
	// Not cancelled with the request: a caller hanging up must not look
	// like a database failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	fresh, err := r.store.UseSignature(ctx, sig, expires)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// One warning per period, however many requests are in flight.
		first := !r.down || !now.Before(r.downUntil)
		r.down, r.downUntil = true, now.Add(replayRetryAfter)
		if !first {
			return true
		}
		r.log.Warn("replay check: the CRM database did not answer; accepting requests whose signature this process has not seen, "+
			"a replay to another API replica goes unnoticed until it answers",
			"error", err.Error(), "retry_in", replayRetryAfter.String())
		return true
	}
	if r.down {
		r.down = false
		r.log.Info("replay check: the CRM database answers again; replays are refused across API replicas")
	}
	if !r.sweeping && now.Sub(r.lastSweep) >= replaySweepEvery {
		r.sweeping, r.lastSweep = true, now
		r.sweeps.Add(1)
		go r.sweep(now.Add(-replaySweepGrace))
	}
	return fresh
}

// sweep deletes the signatures that expired before before, in bounded
// batches, off the request path.
func (r *sharedReplays) sweep(before time.Time) {
	defer r.sweeps.Done()
	defer func() {
		r.mu.Lock()
		r.sweeping = false
		r.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), replaySweepTimeout)
	defer cancel()
	for range replaySweepMaxBatches {
		n, err := r.store.SweepSignatures(ctx, before, replaySweepBatch)
		if err != nil {
			r.log.Warn("replay check: could not delete expired signatures from the CRM database; will try again",
				"error", err.Error(), "retry_in", replaySweepEvery.String())
			return
		}
		if n < replaySweepBatch {
			return
		}
	}
}
