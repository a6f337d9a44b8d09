package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/store"
)

func openT(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path)
	t.Cleanup(func() {
		if db != nil {
			_ = db.Close()
		}
	})
	require.NoError(t, err)
	return db
}

func TestOpenPragmas(t *testing.T) {
	db := openT(t, filepath.Join(t.TempDir(), "x.db"))
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", fmt.Sprint(store.BusyTimeout.Milliseconds())},
		{"foreign_keys", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			// Several pooled connections must all carry the pragmas, not just the first.
			conns := make([]*sql.Conn, 3)
			for i := range conns {
				c, err := db.Conn(context.Background())
				require.NoError(t, err)
				conns[i] = c
			}
			for _, c := range conns {
				var got string
				require.NoError(t, c.QueryRowContext(context.Background(), "PRAGMA "+tt.pragma).Scan(&got))
				assert.Equal(t, tt.want, got)
				_ = c.Close()
			}
		})
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	tests := []string{"", "a?b.db", filepath.Join(t.TempDir(), "missing-dir", "x.db")}
	for _, path := range tests {
		_, err := store.Open(context.Background(), path)
		assert.Error(t, err, path)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	db := openT(t, path)
	v1 := []string{
		`CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b (id INTEGER PRIMARY KEY)`,
	}
	require.NoError(t, store.Migrate(ctx, db, v1))
	got, err := store.Version(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, 1, got)

	// Re-running is a no-op (CREATE TABLE a would fail if applied twice).
	require.NoError(t, store.Migrate(ctx, db, v1))

	v2 := append(v1, `ALTER TABLE a ADD COLUMN name TEXT`)
	require.NoError(t, store.Migrate(ctx, db, v2))
	got, err = store.Version(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, 2, got)
	_, err = db.ExecContext(ctx, `INSERT INTO a (name) VALUES ('x'); INSERT INTO b DEFAULT VALUES`)
	require.NoError(t, err)

	// An older binary must refuse a newer schema rather than run against it.
	assert.Error(t, store.Migrate(ctx, db, v1[:0]))

	// A failing step leaves the version where it was.
	bad := append(v2, `CREATE TABLE a (id INTEGER)`)
	assert.Error(t, store.Migrate(ctx, db, bad))
	got, err = store.Version(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, 2, got)
}

func TestMigrateConcurrentHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "race.db")
	migs := []string{`CREATE TABLE a (id INTEGER PRIMARY KEY)`, `CREATE TABLE b (id INTEGER PRIMARY KEY)`}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		db := openT(t, path)
		wg.Go(func() { errs[i] = store.Migrate(ctx, db, migs) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

// Two *sql.DB handles on one file behave like two replica processes: each sees the other's
// commits, and concurrent write transactions wait for each other instead of failing busy.
func TestTwoHandlesShareOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a := openT(t, path)
	b := openT(t, path)
	require.NoError(t, store.Migrate(ctx, a, []string{`CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)`}))
	require.NoError(t, store.Migrate(ctx, b, []string{`CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)`}))

	_, err := a.ExecContext(ctx, `UPDATE counter SET n = 41`)
	require.NoError(t, err)
	var n int
	require.NoError(t, b.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n))
	assert.Equal(t, 41, n, "b sees a's commit")

	// Read-modify-write in transactions from both handles: a lost update or a BUSY error
	// would show up as a wrong total or an error.
	const workers, perWorker = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*perWorker)
	for w := range 2 * workers {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Go(func() {
			for range perWorker {
				errs <- increment(ctx, db)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, a.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n))
	assert.Equal(t, 41+2*workers*perWorker, n)
}

func increment(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counter SET n = ? WHERE id = 1`, n+1); err != nil {
		return err
	}
	return tx.Commit()
}

func TestIsUniqueViolation(t *testing.T) {
	ctx := context.Background()
	db := openT(t, filepath.Join(t.TempDir(), "u.db"))
	require.NoError(t, store.Migrate(ctx, db, []string{`CREATE TABLE k (id TEXT PRIMARY KEY, u TEXT UNIQUE, v TEXT NOT NULL)`}))
	_, err := db.ExecContext(ctx, `INSERT INTO k VALUES ('1', 'a', 'x')`)
	require.NoError(t, err)
	tests := []struct {
		name string
		sql  string
		want bool
	}{
		{"primary key", `INSERT INTO k VALUES ('1', 'b', 'x')`, true},
		{"unique", `INSERT INTO k VALUES ('2', 'a', 'x')`, true},
		{"not null", `INSERT INTO k VALUES ('3', 'c', NULL)`, false},
		{"syntax", `INSERT INTO`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tt.sql)
			require.Error(t, err)
			assert.Equal(t, tt.want, store.IsUniqueViolation(err))
		})
	}
	assert.False(t, store.IsUniqueViolation(nil))
}
