package crm

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound is returned when the row named by a key does not exist.
	ErrNotFound = errors.New("crm: not found")
	// ErrErased is returned by writes about a customer whose personal data
	// was erased; the tombstone is never brought back.
	ErrErased = errors.New("crm: customer erased")
	// ErrInvalid is wrapped by every *ValidationError.
	ErrInvalid = errors.New("crm: invalid input")
	// ErrKeyConflict is returned when an idempotency key is reused for a
	// different customer: that is a bug in how the caller derives keys.
	ErrKeyConflict = errors.New("crm: idempotency key reused for different data")
	// ErrHandoffClosed is returned when a handoff that is won, lost or
	// rejected would be moved to another status.
	ErrHandoffClosed = errors.New("crm: handoff is closed")
)

// migrationLockID is the advisory lock that serialises migrations of this
// schema (the ASCII bytes "lcrm"); it is distinct from goose's default so
// that another goose-managed schema in the same database does not wait on
// ours. Advisory locks are per database.
const migrationLockID int64 = 0x6c63726d // "lcrm"

// Store is the CRM store. It is safe for concurrent use; open one per
// process.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at databaseURL (a postgres:// URL or a
// keyword/value DSN; pool settings such as pool_max_conns are read from it)
// and checks that it answers. The database must exist; see EnsureDatabase.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx masks the password in its parse errors.
		return nil, fmt.Errorf("open crm store: parse database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open crm store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open crm store: connect to %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return &Store{pool: pool}, nil
}

// Connect is Open without waiting for the database: the pool connects on
// first use. A process that must start while PostgreSQL is away — the HTTP
// API, whose signups and events go to Temporal, not to the database — uses
// it; each call then fails until the database answers.
func Connect(databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open crm store: parse database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("open crm store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() { s.pool.Close() }

// Pool returns the underlying pool, for read-only reports.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// EnsureDatabase creates the database named in databaseURL when it does not
// exist. It first connects to the database itself (so a role without
// CREATEDB works when the database is there); when PostgreSQL answers that
// the database does not exist it connects to the "postgres" maintenance
// database on the same server and creates it. Two processes doing this at
// once are fine: the loser's "already exists" is not an error.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	// Parsed as a pool's URL, so that pool settings in it (pool_max_conns)
	// are not sent to the server as parameters.
	poolCfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("ensure database: parse database URL: %w", err)
	}
	cfg := poolCfg.ConnConfig
	name := cfg.Database
	if name == "" {
		return fmt.Errorf("ensure database: %w", invalid("database_url", "names no database"))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	if !isPgCode(err, "3D000") { // invalid_catalog_name: database does not exist
		return fmt.Errorf("ensure database %q: %w", name, err)
	}

	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("ensure database %q: connect to maintenance database: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// CREATE DATABASE takes no bind parameters; the name is quoted as an
	// identifier by pgx.
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// 42P04 duplicate_database; 23505 when two CREATE DATABASE race on
	// pg_database's unique index.
	if err != nil && !isPgCode(err, "42P04") && !isPgCode(err, "23505") {
		return fmt.Errorf("ensure database %q: create: %w", name, err)
	}
	return nil
}

// Migrate applies the embedded migrations that are not applied yet. It is
// idempotent, and concurrent callers (several workers starting at once)
// are serialised by a PostgreSQL session advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate crm: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		// Probe every second for up to 5 minutes (goose's default probes
		// every 5 s, which slows down every second worker's start).
		lock.WithLockTimeout(1, 300),
		lock.WithUnlockTimeout(1, 60),
	)
	if err != nil {
		return fmt.Errorf("migrate crm: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithLogger(goose.NopLogger()),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrate crm: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate crm: %w", err)
	}
	return nil
}

func isPgCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// nullTime maps the zero time to SQL NULL (so that the database's clock,
// or a COALESCE default, is used).
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// timeOrZero maps a scanned NULL to the zero time.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
