// Package postgres opens the PostgreSQL store backend through pgx (pgxpool):
// JSONB bodies, search-index tables, and several group-commit writers.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// migrationLock keeps two replicas from migrating at once.
const migrationLock = "SELECT pg_advisory_xact_lock(7271001)"

// Options configure Open.
type Options struct {
	sqlstore.Options
	// Writers is the number of group-commit workers (default 4).
	Writers int
	// MaxConns bounds the pool (default 16).
	MaxConns int32
}

// Open connects to url, applies pending migrations and returns the store.
func Open(ctx context.Context, url string, o Options) (*sqlstore.Store, error) {
	be, err := Connect(ctx, url, o.MaxConns)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, be); err != nil {
		be.Close()
		return nil, err
	}
	writers := o.Writers
	if writers == 0 {
		writers = 4
	}
	return sqlstore.New(be, sqlstore.Dialect{
		SkipLocked: " FOR UPDATE SKIP LOCKED",
		ForUpdate:  " FOR UPDATE",
		AuditLock:  "SELECT pg_advisory_xact_lock(7271002)",
		Writers:    writers,
		SeqExpr:    "nextval('resource_seq')",
	}, o.Options), nil
}

// Migrate applies pending migrations and returns the versions applied.
func Migrate(ctx context.Context, be *Backend) ([]int, error) {
	return sqlstore.MigrateSchema(ctx, be, sqlstore.PostgresTypes, migrationLock)
}

// Backend is the pgx implementation of sqlstore.Backend.
type Backend struct {
	pool *pgxpool.Pool
}

// Connect opens a pool to url and checks it answers.
func Connect(ctx context.Context, url string, maxConns int32) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if maxConns == 0 {
		maxConns = 16
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return &Backend{pool: pool}, nil
}

// Pool exposes the pool (for tests and benchmarks).
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// Name implements sqlstore.Backend.
func (b *Backend) Name() string { return "postgres" }

// Begin implements sqlstore.Backend.
func (b *Backend) Begin(ctx context.Context) (sqlstore.WriteTx, error) {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &pgTx{tx: tx}, nil
}

// Reader implements sqlstore.Backend.
func (b *Backend) Reader() sqlstore.Conn { return conn{b.pool} }

// Retryable implements sqlstore.Backend: serialisation failures, deadlocks
// and lock timeouts.
func (b *Backend) Retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03":
			return true
		}
	}
	return false
}

// UniqueViolation implements sqlstore.Backend.
func (b *Backend) UniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Ping implements sqlstore.Backend.
func (b *Backend) Ping(ctx context.Context) error { return b.pool.Ping(ctx) }

// Close implements sqlstore.Backend.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type conn struct{ q querier }

func (c conn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (c conn) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	rows, err := c.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (c conn) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	return row{c.q.QueryRow(ctx, sql, args...)}
}

// row reports pgx's "no rows" as database/sql's, which the engine checks.
type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}

// pgTx queues statements in a pgx batch: a resource write with its index
// rows and outbox event goes to the server in one round trip.
type pgTx struct {
	tx    pgx.Tx
	batch pgx.Batch
}

func (t *pgTx) Queue(sql string, args ...any) { t.batch.Queue(sql, args...) }

func (t *pgTx) Flush(ctx context.Context) error {
	n := t.batch.Len()
	if n == 0 {
		return nil
	}
	b := t.batch
	t.batch = pgx.Batch{}
	br := t.tx.SendBatch(ctx, &b)
	var first error
	for range n {
		if _, err := br.Exec(); err != nil && first == nil {
			first = err
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func (t *pgTx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if err := t.Flush(ctx); err != nil {
		return 0, err
	}
	return conn{t.tx}.Exec(ctx, sql, args...)
}

func (t *pgTx) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	if err := t.Flush(ctx); err != nil {
		return nil, err
	}
	return conn{t.tx}.Query(ctx, sql, args...)
}

func (t *pgTx) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	if err := t.Flush(ctx); err != nil {
		return errRow{err}
	}
	return conn{t.tx}.QueryRow(ctx, sql, args...)
}

func (t *pgTx) Commit(ctx context.Context) error {
	if err := t.Flush(ctx); err != nil {
		_ = t.tx.Rollback(ctx)
		return err
	}
	return t.tx.Commit(ctx)
}

func (t *pgTx) Rollback(ctx context.Context) error {
	t.batch = pgx.Batch{}
	return t.tx.Rollback(ctx)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
