// Package email sends the project's mail over SMTP with
// github.com/wneessen/go-mail.
//
// A Sender keeps a small pool of long-lived SMTP connections (one go-mail
// Client per slot), dialled lazily and reused for many messages. Before each
// message go-mail checks the connection with NOOP; a connection the server
// closed (idle timeout, restart) is detected there and the message is sent
// once more on a fresh connection. Nothing is retried once message data may
// have reached the server, so the Sender itself never sends a message twice.
//
// Errors are classified for the caller's retry policy: *PermanentError for
// 5xx replies and messages refused locally (IsPermanent), plain errors for
// everything worth retrying (4xx, network, timeouts).
//
// Signer makes the signed one-click unsubscribe links, MessageIDFor the
// idempotent Message-IDs. Package email/mailpit reads what Mailpit received.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes for Config.TLSMode.
const (
	// TLSNone sends in clear text (local Mailpit).
	TLSNone = "none"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it.
	TLSOpportunistic = "opportunistic"
	// TLSStartTLS requires STARTTLS.
	TLSStartTLS = "starttls"
	// TLSImplicit connects with TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "tls"
)

// Defaults applied by NewSender to zero Config fields.
const (
	DefaultConnections = 4
	DefaultTimeout     = 15 * time.Second
)

// Config says how to reach the SMTP server and who mail is from.
type Config struct {
	Host string
	// Port defaults by TLSMode: 465 for tls, 587 for starttls, else 25.
	Port int
	// Username and Password enable SMTP AUTH. Credentials are only sent
	// over TLS or to a server on localhost.
	Username, Password string
	// TLSMode is none, opportunistic, starttls or tls (required).
	TLSMode string
	// From is the bare sender address; FromName its display name.
	From, FromName string
	// Connections is the pool size (default 4): at most this many SMTP
	// connections are open, and at most this many messages are in flight.
	Connections int
	// Timeout bounds dialling and each SMTP exchange (default 15s).
	Timeout time.Duration
	// TLSConfig optionally replaces the TLS settings (e.g. RootCAs for a
	// private CA). It is cloned; ServerName defaults to Host and
	// MinVersion to TLS 1.2.
	TLSConfig *tls.Config
}

// Stats counts what a Sender did since NewSender.
type Stats struct {
	// Dials is the number of TCP connections attempted to the SMTP server.
	Dials uint64
	// Redials is the number of sends retried on a fresh connection after the
	// pooled one turned out to be dead.
	Redials uint64
	// Sent is the number of messages the server accepted.
	Sent uint64
	// Failed is the number of Send calls that returned an error after
	// validation (i.e. that talked, or tried to talk, to the server).
	Failed uint64
	// Open is the number of connections open right now.
	Open int64
}

// Sender sends messages over a pool of SMTP connections. It is safe for
// concurrent use; Close it when done.
type Sender struct {
	from    *mail.Address
	addr    string
	timeout time.Duration

	// The pool: sem holds one token per idle slot; free is a stack, so
	// the most recently used (warm) connection is taken first and
	// sequential sends stay on one connection.
	sem       chan struct{}
	mu        sync.Mutex
	free      []*slot
	all       []*slot
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	dials, redials, sent, failed atomic.Uint64
	open                         atomic.Int64
}

// slot is one pooled connection. Only the goroutine holding the slot (taken
// from the pool) uses client; conn is also used by the context watcher.
type slot struct {
	client *gomail.Client
	mu     sync.Mutex
	conn   net.Conn // the connection under client, nil when not connected
}

func (sl *slot) setConn(c net.Conn) {
	sl.mu.Lock()
	sl.conn = c
	sl.mu.Unlock()
}

func (sl *slot) connected() bool {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.conn != nil
}

// abort closes the connection under the slot without QUIT, so that any
// exchange in progress fails at once. The slot stays marked connected.
func (sl *slot) abort() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.conn != nil {
		_ = sl.conn.SetDeadline(time.Unix(1, 0))
		_ = sl.conn.Close()
	}
}

// NewSender validates cfg and prepares the pool; no connection is made
// until the first Send.
func NewSender(cfg Config) (*Sender, error) {
	bad := func(format string, args ...any) (*Sender, error) {
		return nil, fmt.Errorf("email: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" {
		return bad("Host is empty")
	}
	if strings.ContainsAny(cfg.Host, " \t\r\n/") {
		return bad("Host %q is not a host name", cfg.Host)
	}
	var policy gomail.TLSPolicy
	implicitTLS := false
	defPort := 25
	switch cfg.TLSMode {
	case TLSNone:
		policy = gomail.NoTLS
	case TLSOpportunistic:
		policy = gomail.TLSOpportunistic
	case TLSStartTLS:
		policy, defPort = gomail.TLSMandatory, 587
	case TLSImplicit:
		policy, implicitTLS, defPort = gomail.NoTLS, true, 465
	default:
		return bad("TLSMode is %q; want one of none, opportunistic, starttls, tls", cfg.TLSMode)
	}
	if cfg.Port == 0 {
		cfg.Port = defPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return bad("Port %d is not between 1 and 65535", cfg.Port)
	}
	if cfg.Connections == 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Connections < 0 || cfg.Connections > 100 {
		return bad("Connections %d is not between 1 and 100", cfg.Connections)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return bad("Timeout %s is negative", cfg.Timeout)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return bad("Password is set but Username is empty")
	}
	fromAddr, problem := bareAddress(cfg.From)
	if problem != "" {
		return bad("From %s", problem)
	}
	if p := lineProblem(cfg.FromName); p != "" {
		return bad("FromName %s", p)
	}

	s := &Sender{
		from:    &mail.Address{Name: cfg.FromName, Address: fromAddr},
		addr:    net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		timeout: cfg.Timeout,
		sem:     make(chan struct{}, cfg.Connections),
		closing: make(chan struct{}),
	}
	tlsConfig := &tls.Config{}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = cfg.Host
	}
	if tlsConfig.MinVersion == 0 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	for range cfg.Connections {
		sl := &slot{}
		opts := []gomail.Option{
			gomail.WithPort(cfg.Port),
			gomail.WithTimeout(cfg.Timeout),
			gomail.WithTLSPolicy(policy),
			gomail.WithTLSConfig(tlsConfig),
			gomail.WithDialContextFunc(s.dialer(sl, implicitTLS, tlsConfig)),
			// A successful DATA ends the SMTP transaction, so go-mail's
			// NOOP+RSET after every message is two wasted round trips;
			// sendOn resets the session itself after a failed one. The
			// NOOP before each message (liveness check) stays.
			gomail.WithoutRset(),
		}
		if implicitTLS {
			// Our dialer does the TLS handshake; WithSSL only stops go-mail
			// from trying STARTTLS inside it.
			opts = append(opts, gomail.WithSSL())
		}
		if cfg.Username != "" {
			opts = append(opts,
				gomail.WithUsername(cfg.Username),
				gomail.WithPassword(cfg.Password),
				// PLAIN and LOGIN refuse to send credentials over a clear
				// connection to anything but localhost.
				gomail.WithOpportunisticSMTPAuth(
					gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1,
					gomail.SMTPAuthPlain, gomail.SMTPAuthLogin, gomail.SMTPAuthCramMD5),
			)
		}
		c, err := gomail.NewClient(cfg.Host, opts...)
		if err != nil {
			return bad("%v", err)
		}
		sl.client = c
		s.all = append(s.all, sl)
		s.free = append(s.free, sl)
		s.sem <- struct{}{}
	}
	return s, nil
}

// dialer returns the DialContextFunc of one slot: it counts dials, does the
// TLS handshake for implicit TLS and remembers the connection, so that a
// dead one can be closed for sure and a cancelled context can abort it.
func (s *Sender) dialer(sl *slot, implicitTLS bool, tlsConfig *tls.Config) gomail.DialContextFunc {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		s.dials.Add(1)
		nd := &net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}
		var (
			c   net.Conn
			err error
		)
		if implicitTLS {
			c, err = (&tls.Dialer{NetDialer: nd, Config: tlsConfig}).DialContext(ctx, network, s.addr)
		} else {
			c, err = nd.DialContext(ctx, network, s.addr)
		}
		if err != nil {
			return nil, err
		}
		sl.setConn(c)
		s.open.Add(1)
		return c, nil
	}
}

// From returns the sender address (without display name), e.g. for
// MessageIDFor.
func (s *Sender) From() string { return s.from.Address }

// Stats returns the counters of s.
func (s *Sender) Stats() Stats {
	return Stats{
		Dials:   s.dials.Load(),
		Redials: s.redials.Load(),
		Sent:    s.sent.Load(),
		Failed:  s.failed.Load(),
		Open:    s.open.Load(),
	}
}

// drop forgets the slot's connection, closing it without QUIT.
func (s *Sender) drop(sl *slot) {
	sl.mu.Lock()
	c := sl.conn
	sl.conn = nil
	sl.mu.Unlock()
	if c != nil {
		_ = c.Close()
		s.open.Add(-1)
	}
}

// connect dials the slot's client.
func (s *Sender) connect(ctx context.Context, sl *slot) error {
	if err := sl.client.DialWithContext(ctx); err != nil {
		// A failed handshake may leave a half-open connection behind.
		s.drop(sl)
		if ctx.Err() != nil {
			return fmt.Errorf("email: connect to %s: %w (%v)", s.addr, ctx.Err(), err)
		}
		return fmt.Errorf("email: connect to %s: %w", s.addr, err)
	}
	return nil
}

// Send validates m, then sends it on a pooled connection. It blocks while
// all connections are busy (or until ctx is done).
//
// A *PermanentError means the message can never be sent as it is (invalid
// input, 5xx reply); any other error is worth retrying later. A send whose
// outcome is unknown (the connection broke after the message data went
// out) returns a retryable error: the server may have accepted it, which is
// what the stable Message-ID is for.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := build(m, s.from)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("email: send: %w", err)
	}

	select {
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("email: waiting for an SMTP connection: %w", ctx.Err())
	case <-s.sem:
	}
	sl := s.take()
	defer s.put(sl)
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}

	err = s.sendOn(ctx, sl, msg)
	if err != nil {
		s.failed.Add(1)
		return err
	}
	s.sent.Add(1)
	return nil
}

// take pops the most recently used idle slot; the caller holds a token.
func (s *Sender) take() *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return sl
}

// put returns a slot to the pool with its token.
func (s *Sender) put(sl *slot) {
	s.mu.Lock()
	s.free = append(s.free, sl)
	s.mu.Unlock()
	s.sem <- struct{}{}
}

// sendOn sends msg on sl, redialling once when the pooled connection turns
// out to be dead before any message data was sent.
func (s *Sender) sendOn(ctx context.Context, sl *slot, msg *gomail.Msg) error {
	// A cancelled context aborts whatever exchange is in progress. If that
	// happened, wait for the abort to finish and forget the connection
	// before the slot goes back to the pool.
	aborted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		sl.abort()
		close(aborted)
	})
	defer func() {
		if !stop() {
			<-aborted
			s.drop(sl)
		}
	}()

	for attempt := 0; ; attempt++ {
		fresh := false
		if !sl.connected() {
			if err := s.connect(ctx, sl); err != nil {
				return err
			}
			fresh = true
		}
		// The deadline set at dial time (or by the last send) may have
		// passed while the connection sat idle in the pool; a live
		// connection must not look dead because of that.
		sl.mu.Lock()
		if sl.conn != nil && ctx.Err() == nil {
			_ = sl.conn.SetDeadline(time.Now().Add(s.timeout))
		}
		sl.mu.Unlock()

		err := sl.client.Send(msg)
		if err == nil {
			return nil
		}
		if msg.IsDelivered() {
			// The server accepted the message; what failed came after
			// it. Start over on a fresh connection next time.
			s.drop(sl)
			return nil
		}

		var se *gomail.SendError
		if !errors.As(err, &se) {
			s.drop(sl)
			return fmt.Errorf("email: send to %s: %w", s.addr, err)
		}
		code := se.ErrorCode()
		// No SMTP reply code means a network or protocol failure; 421 means
		// the server is closing the connection.
		broken := code == 0 || code == 421
		if broken {
			s.drop(sl)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("email: send: %w (%v)", ctx.Err(), err)
		}
		if broken && !fresh && attempt == 0 && beforeData(se.Reason) {
			// A pooled connection died while idle: nothing of this
			// message reached the server, so one more try is safe.
			s.redials.Add(1)
			continue
		}
		if !broken {
			// The server answered; make sure the session is back to a
			// clean state (go-mail does not RSET after every failure),
			// or forget the connection.
			if rerr := sl.client.Reset(); rerr != nil {
				s.drop(sl)
			}
		}
		switch {
		case code == 530 || code == 535:
			// Authentication required / failed: our configuration is
			// wrong, not the message. Retry once it is fixed.
			return fmt.Errorf("email: send: SMTP server refused our credentials (check the SMTP username and password): %w", err)
		case code >= 500 && code <= 599:
			enhanced := se.EnhancedStatusCode()
			return &PermanentError{Code: code, EnhancedCode: enhanced, Err: err,
				Recipient: se.Reason == gomail.ErrSMTPRcptTo || strings.HasPrefix(enhanced, "5.1.")}
		}
		return fmt.Errorf("email: send: %w", err)
	}
}

// beforeData reports whether a send that failed for reason r certainly did
// not transmit any message data.
func beforeData(r gomail.SendErrReason) bool {
	switch r {
	case gomail.ErrConnCheck, gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData:
		return true
	}
	return false
}

// Close waits for sends in progress, says QUIT on every open connection and
// closes them. Send returns ErrClosed afterwards. Close is idempotent.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		var errs []error
		for range s.all {
			<-s.sem // wait for the sends in progress
		}
		for _, sl := range s.all {
			if !sl.connected() {
				continue
			}
			sl.mu.Lock()
			_ = sl.conn.SetDeadline(time.Now().Add(min(s.timeout, 5*time.Second)))
			sl.mu.Unlock()
			if err := sl.client.Close(); err != nil {
				errs = append(errs, err)
			}
			s.drop(sl)
		}
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("email: close: %w", errors.Join(errs...))
		}
	})
	return s.closeErr
}
