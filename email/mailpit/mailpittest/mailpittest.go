// Package mailpittest starts private Mailpit servers for tests that need
// what the shared test server cannot give: rejected recipients
// (--smtp-allowed-recipients), failures on purpose (--chaos-triggers),
// required authentication (--smtp-auth-file), or a restart.
//
// The binary is $MAILPIT_BIN, else .cache/bin/mailpit in the repository
// (built by scripts/tools.sh), else mailpit on PATH. Without one the test
// is skipped locally and fails in CI, by the rules of internal/testenv.
package mailpittest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/lifecycle/internal/testenv"
)

// Server is a Mailpit process owned by one test.
type Server struct {
	t        testing.TB
	bin      string
	args     []string
	smtpPort int
	httpPort int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs a Mailpit with the extra flags on free local ports, waits until
// it answers, and stops it when the test ends. Messages live in a database
// in the test's temporary directory, so they survive Restart.
func Start(t testing.TB, extraFlags ...string) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		bin:      Binary(t),
		smtpPort: freePort(t),
		httpPort: freePort(t),
	}
	s.args = append([]string{
		"--smtp", "127.0.0.1:" + strconv.Itoa(s.smtpPort),
		"--listen", "127.0.0.1:" + strconv.Itoa(s.httpPort),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--max", "0",
		"--disable-version-check",
		"--smtp-disable-rdns",
		"--quiet",
	}, extraFlags...)
	s.run()
	t.Cleanup(s.Stop)
	return s
}

// SMTPAddr is the host:port of the SMTP server.
func (s *Server) SMTPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.smtpPort) }

// APIURL is the base URL of the HTTP API (for mailpit.New).
func (s *Server) APIURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.httpPort) }

// Restart stops the server, dropping every open SMTP connection, and starts
// it again on the same ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.run()
}

// Resume starts a server that Stop stopped, on the same ports.
func (s *Server) Resume() {
	s.t.Helper()
	s.run()
}

func (s *Server) run() {
	t := s.t
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatal("mailpittest: server already running")
	}
	cmd := exec.Command(s.bin, s.args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("mailpittest: start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			t.Fatalf("mailpittest: mailpit %s exited at start:\n%s", strings.Join(s.args, " "), out)
		default:
		}
		if ready(s.SMTPAddr(), s.APIURL()+"/readyz") {
			return
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			t.Fatalf("mailpittest: mailpit %s not ready after 15s:\n%s", strings.Join(s.args, " "), out)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 5s). Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Binary returns the path of the Mailpit binary, or skips (locally) or
// fails (CI) the test when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("MAILPIT_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			missing(t, fmt.Sprintf("MAILPIT_BIN=%s: %v", bin, err))
		}
		return bin
	}
	if root, err := repoRoot(); err == nil {
		bin := filepath.Join(root, ".cache", "bin", "mailpit")
		if st, err := os.Stat(bin); err == nil && !st.IsDir() {
			return bin
		}
	}
	bin, err := exec.LookPath("mailpit")
	if err != nil {
		missing(t, "no $MAILPIT_BIN, no .cache/bin/mailpit (scripts/tools.sh builds it) and no mailpit on PATH")
	}
	return bin
}

func missing(t testing.TB, why string) {
	t.Helper()
	msg := "Mailpit binary for a private test server not found: " + why
	if testenv.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// repoRoot is the nearest directory above the working directory (a test's
// package directory) that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailpittest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ready(smtpAddr, readyURL string) bool {
	c, err := net.DialTimeout("tcp", smtpAddr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyURL, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// syncBuffer collects the server's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
