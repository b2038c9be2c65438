package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/internal/faultproxy"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line on c and returns the answer, or the error when
// none came within a second.
func roundTrip(c net.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCutRestoreBlackhole(t *testing.T) {
	p := faultproxy.New(t, echoServer(t))
	addr := p.Addr()

	before := dial(t, addr)
	got, err := roundTrip(before, "hello")
	require.NoError(t, err)
	require.Equal(t, "hello\n", got, "the proxy forwards both ways")

	p.Cut()
	_, err = roundTrip(before, "after cut")
	require.Error(t, err, "a connection open at the cut is closed")
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "closed, not left hanging: %v", err)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "new connections are refused while cut")

	p.Restore()
	require.Equal(t, addr, p.Addr(), "restored on the same address")
	again := dial(t, addr)
	got, err = roundTrip(again, "back")
	require.NoError(t, err)
	require.Equal(t, "back\n", got)

	p.Blackhole()
	_, err = roundTrip(again, "into the void")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "an open connection gets no answer")
	silent := dial(t, addr) // accepted...
	_, err = roundTrip(silent, "anyone?")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "...but a new connection gets no answer either")

	p.Restore()
	fresh := dial(t, addr)
	got, err = roundTrip(fresh, "light")
	require.NoError(t, err)
	require.Equal(t, "light\n", got, "a new connection works after the blackhole")

	// Cut after a blackhole lifts it first, and restores to a working proxy.
	p.Blackhole()
	p.Cut()
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err)
	p.Restore()
	got, err = roundTrip(dial(t, addr), "done")
	require.NoError(t, err)
	require.Equal(t, "done\n", got)
}
