package crm_test

import (
	"context"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/testenv"
)

var crmTables = []string{"contacts", "events", "stage_transitions", "score_history", "handoffs", "tasks", "email_log", "suppressions"}

func tablesPresent(t *testing.T, s *crm.Store) {
	t.Helper()
	for _, table := range crmTables {
		require.Equal(t, 1, count(t, s, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1`, table), table)
	}
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tablesPresent(t, s)
	versions := count(t, s, `SELECT count(*) FROM goose_db_version`)
	require.NoError(t, s.Migrate(t.Context()))
	require.Equal(t, versions, count(t, s, `SELECT count(*) FROM goose_db_version`))
	tablesPresent(t, s)
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	// Two workers: two processes' pools on the same database.
	stores := []*crm.Store{openStore(t, dbURL), openStore(t, dbURL), openStore(t, dbURL)}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "worker %d", i)
	}
	tablesPresent(t, stores[0])
	// Version 0 plus each migration file, each applied once.
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.Equal(t, len(files)+1, count(t, stores[0], `SELECT count(*) FROM goose_db_version`))
	require.Equal(t, len(files), count(t, stores[0], `SELECT count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`))
}

func TestEnsureDatabase(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresURL()
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		testenv.NewDatabase(t) // skips or fails with the standard message
	}
	require.NoError(t, conn.Close(t.Context()))
	u, err := url.Parse(base)
	require.NoError(t, err)
	name := "lifecycle_test_ensure_" + testenv.RandomID(6)
	u.Path = "/" + name
	dbURL := u.String()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})

	// Several processes at once: all succeed, one creates it.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = crm.EnsureDatabase(t.Context(), dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "caller %d", i)
	}
	// Harmless when it exists.
	require.NoError(t, crm.EnsureDatabase(t.Context(), dbURL))
	s := openStore(t, dbURL)
	require.NoError(t, s.Migrate(t.Context()))
	s.Close()

	u.Path = "/"
	requireInvalid(t, crm.EnsureDatabase(t.Context(), u.String()), "database_url")
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := crm.Open(t.Context(), "postgres://nobody:secret-pw@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-pw")
}
