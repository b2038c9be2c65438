// Package testenv gives integration tests the real servers of the local
// stack (PostgreSQL, Mailpit, Temporal) and decides what happens when one is
// missing: outside CI the test is skipped with a hint; with CI=true (or
// LIFECYCLE_REQUIRE_STACK=1, which `make test` sets) it fails and names the
// server, so a missing server is never mistaken for a passing suite.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("LIFECYCLE_REQUIRE_STACK") == "1"
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// unavailable skips or fails the test for a server that cannot be reached.
func unavailable(t testing.TB, server, addr string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not reachable at %s (%v); `make test` starts the local stack", server, addr, err)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// PostgresURL is the server URL tests use (without a fresh database).
func PostgresURL() string {
	return getenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// NewDatabase creates an empty database on the test PostgreSQL server and
// returns its URL; the database is dropped when the test ends. Each test
// package gets its own, so packages running in parallel never see each
// other's rows.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("DATABASE_URL is not a URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		unavailable(t, "PostgreSQL", u.Host, err)
		return ""
	}
	defer conn.Close(context.Background())

	name := "lifecycle_test_" + RandomID(6)
	// CREATE DATABASE takes no parameters; the name is made here from hex
	// digits only, and quoted with pgx's identifier sanitizer.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	db := *u
	db.Path = "/" + name
	return db.String()
}

// Mailpit returns the SMTP address and the HTTP API base URL of the test
// Mailpit, after checking both answer.
func Mailpit(t testing.TB) (smtpAddr, apiURL string) {
	t.Helper()
	smtpAddr = net.JoinHostPort(getenv("SMTP_HOST", "127.0.0.1"), getenv("SMTP_PORT", "1025"))
	apiURL = strings.TrimRight(getenv("MAILPIT_API_URL", "http://127.0.0.1:8025"), "/")
	if err := dial(smtpAddr); err != nil {
		unavailable(t, "Mailpit SMTP", smtpAddr, err)
	}
	u, _ := url.Parse(apiURL)
	if err := dial(u.Host); err != nil {
		unavailable(t, "Mailpit API", apiURL, err)
	}
	return smtpAddr, apiURL
}

// Temporal returns the address of the Temporal frontend after checking it
// accepts connections.
func Temporal(t testing.TB) string {
	t.Helper()
	addr := getenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
	if err := dial(addr); err != nil {
		unavailable(t, "Temporal", addr, err)
	}
	return addr
}

// RandomID returns n random bytes as hex, for names that must not collide
// between test runs.
func RandomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
