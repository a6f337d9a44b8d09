// Package store opens the SQLite databases of the domain services. Replicas of one service are
// separate OS processes that share one database file, so every connection is configured for
// multi-process use: WAL journal (readers never block the writer), synchronous=FULL (an
// acknowledged commit survives a SIGKILL or power loss), a busy timeout (a writer waits for
// the other process's write lock instead of failing with SQLITE_BUSY) and BEGIN IMMEDIATE
// transactions (a transaction takes the write lock up front, so it can never fail half-way
// when it upgrades from a stale read snapshot).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// BusyTimeout is how long a connection waits for another connection or process to release
// the write lock before giving up with SQLITE_BUSY. It is long enough to ride out a
// checkpoint or a burst of commits from the other replica, and short enough that a wedged
// peer (SIGSTOPped while holding the lock) turns into an error rather than a hang.
const BusyTimeout = 5 * time.Second

// Open opens (creating if needed) the SQLite database at path and checks that it answers.
// Every pooled connection gets the same pragmas through the DSN, since database/sql may open
// new connections at any time.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("open database: path is empty")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open database %s: path must not contain '?' or '#'", path)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// Idle connections are cheap and keep their prepared pragmas; a small pool bounds file
	// descriptors when many goroutines hit the database at once.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	// A connection's first statement sets the journal mode, which needs the file to itself
	// while another process creates the database or recovers its WAL; SQLite answers that
	// with SQLITE_BUSY at once, without the busy handler. Replicas starting together hit it,
	// so the first use is retried within the busy timeout, as a locked write would wait.
	var mode string
	err = retryBusy(ctx, func() error {
		if err := db.PingContext(ctx); err != nil {
			return err
		}
		return db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: journal mode is %q, want wal", path, mode)
	}
	return db, nil
}

// retryBusy runs f until it does not fail with SQLITE_BUSY, for at most BusyTimeout.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(BusyTimeout)
	wait := 5 * time.Millisecond
	for {
		err := f()
		if err == nil || !IsBusy(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Migrate brings the schema up to date. migrations[i] is applied once, in order, and the
// number applied is kept in PRAGMA user_version. Each step runs in its own immediate
// transaction together with the version bump, so two replicas starting at the same time
// serialise on the write lock and the second one finds the work already done.
func Migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	for {
		done, err := migrateStep(ctx, db, migrations)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateStep applies the next pending migration, if any, and reports whether none was left.
func migrateStep(ctx context.Context, db *sql.DB, migrations []string) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return false, fmt.Errorf("migrate schema: database is at version %d, newer than this binary's %d", version, len(migrations))
	}
	if version == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("apply migration %d: %w", version+1, err)
	}
	// PRAGMA does not take bound parameters; version is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("set schema version %d: %w", version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %d: %w", version+1, err)
	}
	return false, nil
}

// Version returns the schema version recorded by Migrate.
func Version(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure, which
// callers use to detect that a concurrent request (maybe in the other replica) won a race.
func IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// IsBusy reports whether err means the database stayed locked for longer than BusyTimeout.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED
}
