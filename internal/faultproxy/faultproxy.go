// Package faultproxy puts an in-process TCP proxy (toxiproxy's Go packages)
// between a component under test and one of the shared servers, so that a
// test can take that server away from the component — and only from it —
// without stopping the server that other tests are using.
//
// It is a normal package only so that several test packages can import it;
// it is meant to be used from tests alone, never from production code.
package faultproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards TCP connections from Addr to an upstream address until it
// is cut or blackholed.
type Proxy struct {
	t    testing.TB
	p    *toxiproxy.Proxy
	addr string

	mu    sync.Mutex
	state state
}

type state int

const (
	up state = iota
	cut
	blackholed
)

// blackholeToxics are the toxic names Blackhole adds (one per direction).
var blackholeToxics = []string{"blackhole_upstream", "blackhole_downstream"}

// New starts a proxy on 127.0.0.1 (a free port) to upstream ("host:port"),
// stopped when the test ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	// A server is only the proxies' registry here: its HTTP API is never
	// started. A private registry keeps it off the default one.
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "->" + upstream
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("faultproxy: start proxy to %s: %v", upstream, err)
	}
	// Start resolved the listen address to the port it got; Restore
	// listens on the same one, so clients keep their configuration.
	fp := &Proxy{t: t, p: p, addr: p.Listen}
	t.Cleanup(p.Stop)
	return fp
}

// Addr is the proxy's "host:port", to give the component under test
// instead of the upstream's.
func (p *Proxy) Addr() string { return p.addr }

// Cut makes the upstream look stopped: open connections are closed and
// new ones are refused (nothing listens on Addr) until Restore.
func (p *Proxy) Cut() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restoreLocked()
	p.p.Stop()
	p.state = cut
}

// Blackhole makes the upstream look unreachable behind a silent network:
// connections are accepted, open ones stay open, and nothing sent either
// way arrives (toxiproxy's timeout toxic, without a timeout) until Restore,
// which then closes the connections that were held.
func (p *Proxy) Blackhole() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restoreLocked()
	for i, dir := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"name":%q,"type":"timeout","stream":%q,"attributes":{"timeout":0}}`, blackholeToxics[i], dir)
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			p.t.Fatalf("faultproxy: blackhole %s: %v", p.addr, err)
		}
	}
	p.state = blackholed
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restoreLocked()
}

func (p *Proxy) restoreLocked() {
	p.t.Helper()
	switch p.state {
	case cut:
		// The port was released at Cut; another process may hold it for
		// a moment, so retry rather than fail at once.
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = p.p.Start(); err == nil {
				break
			}
		}
		if err != nil {
			p.t.Fatalf("faultproxy: restore %s: %v", p.addr, err)
		}
	case blackholed:
		for _, name := range blackholeToxics {
			if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
				p.t.Fatalf("faultproxy: end blackhole %s: %v", p.addr, err)
			}
		}
	}
	p.state = up
}
