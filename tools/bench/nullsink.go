package bench

import (
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
)

// nullSink is an SMTP server that accepts every message and counts it, so
// that a measurement into it measures the sender, not an SMTP server that
// stores mail (Mailpit).
type nullSink struct {
	l     net.Listener
	count atomic.Int64
	wg    sync.WaitGroup
}

func startNullSink() (*nullSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &nullSink{l: l}
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	return s, nil
}

func (s *nullSink) Addr() string { return s.l.Addr().String() }

func (s *nullSink) Close() {
	_ = s.l.Close()
	s.wg.Wait()
}

func (s *nullSink) serve(c net.Conn) {
	tp := textproto.NewConn(c)
	defer tp.Close()
	if tp.PrintfLine("220 null-sink ESMTP") != nil {
		return
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO", "HELO":
			err = tp.PrintfLine("250-null-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8")
		case "DATA":
			if err = tp.PrintfLine("354 go ahead"); err != nil {
				return
			}
			// DotReader reads up to and including the "." line.
			if _, err = tp.ReadDotBytes(); err != nil {
				return
			}
			s.count.Add(1)
			err = tp.PrintfLine("250 2.0.0 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default: // MAIL, RCPT, RSET, NOOP
			err = tp.PrintfLine("250 ok")
		}
		if err != nil {
			return
		}
	}
}
