package email

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// What a Sender is configured with and how it reaches the server: the
// configuration, its validation, and the dialler of the pooled
// connections (sender.go holds the pool and sending).

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
