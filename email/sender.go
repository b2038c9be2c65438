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
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
)

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
