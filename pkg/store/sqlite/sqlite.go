// Package sqlite opens the embedded SQLite store backend (modernc.org/sqlite,
// pure Go): one file under the data directory, WAL journal, full sync, one
// writer connection fed by the group committer and a small pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open.
type Options struct {
	sqlstore.Options
	// Readers bounds the read connections (default 4).
	Readers int
}

// Open opens (creating if needed) the database file at path, applies pending
// migrations and returns the store.
func Open(ctx context.Context, path string, o Options) (*sqlstore.Store, error) {
	be, err := Connect(ctx, path, o.Readers)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, be); err != nil {
		_ = be.Close()
		return nil, err
	}
	return sqlstore.New(be, sqlstore.Dialect{Writers: 1}, o.Options), nil
}

// Migrate applies pending migrations and returns the versions applied.
func Migrate(ctx context.Context, be *Backend) ([]int, error) {
	return sqlstore.Migrate(ctx, be, migrations, "migrations", "")
}

// Backend is the database/sql implementation of sqlstore.Backend for SQLite.
type Backend struct {
	w, r *sql.DB
}

// Connect opens the writer and reader pools on the file at path.
func Connect(ctx context.Context, path string, readers int) (*Backend, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	if readers <= 0 {
		readers = 4
	}
	// WAL lets readers run beside the one writer; synchronous(FULL) syncs the
	// WAL at every commit, so what was acknowledged survives a power cut;
	// busy_timeout makes a second process wait for the lock instead of
	// failing at once.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer connection: SQLite has a single writer anyway, and a second
	// connection would only wait on the lock.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	return &Backend{w: w, r: r}, nil
}

// Name implements sqlstore.Backend.
func (b *Backend) Name() string { return "sqlite" }

// Begin implements sqlstore.Backend.
func (b *Backend) Begin(ctx context.Context) (sqlstore.WriteTx, error) {
	tx, err := b.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &sqlTx{conn: conn{tx}, tx: tx}, nil
}

// Reader implements sqlstore.Backend.
func (b *Backend) Reader() sqlstore.Conn { return conn{b.r} }

// Retryable implements sqlstore.Backend: the database was locked by another
// process for longer than the busy time-out.
func (b *Backend) Retryable(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// UniqueViolation implements sqlstore.Backend.
func (b *Backend) UniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return true
		}
	}
	return false
}

// Ping implements sqlstore.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	var one int
	return b.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Close implements sqlstore.Backend.
func (b *Backend) Close() error {
	return errors.Join(b.r.Close(), b.w.Close())
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type conn struct{ q querier }

func (c conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := c.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (c conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return c.q.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

// sqlTx runs queued statements at once: in process there is no round trip
// to save. The first error is kept for Flush.
type sqlTx struct {
	conn
	tx     *sql.Tx
	queued error
}

func (t *sqlTx) Queue(query string, args ...any) {
	if t.queued != nil {
		return
	}
	if _, err := t.tx.Exec(query, args...); err != nil {
		t.queued = err
	}
}

func (t *sqlTx) Flush(context.Context) error {
	err := t.queued
	t.queued = nil
	return err
}

func (t *sqlTx) Commit(context.Context) error {
	if err := t.Flush(context.Background()); err != nil {
		_ = t.tx.Rollback()
		return err
	}
	return t.tx.Commit()
}

func (t *sqlTx) Rollback(context.Context) error {
	t.queued = nil
	return t.tx.Rollback()
}
