// Package sqlstore is the SQL engine behind both store backends: resources
// with versions and search indexes, the outbox, the inbox, timers, leases and
// the audit chain, written once over a small connection interface. The
// PostgreSQL backend (pkg/store/postgres, pgx) and the SQLite backend
// (pkg/store/sqlite, modernc.org/sqlite) supply a connection, a dialect and
// their migrations.
//
// Writes go through a group committer: concurrent Tx calls are gathered into
// one database transaction, each inside its own savepoint, so that one fsync
// makes many of them durable. SQLite has one writer; PostgreSQL several.
package sqlstore

import (
	"context"
)

// Conn is what the engine needs from a database connection or transaction.
// Statements use $1, $2… placeholders (both PostgreSQL and SQLite accept them).
type Conn interface {
	Exec(ctx context.Context, sql string, args ...any) (rowsAffected int64, err error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// Rows iterates over a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is a single-row result.
type Row interface {
	Scan(dest ...any) error
}

// WriteConn is the connection of a write transaction. Statements whose
// result is only success or failure are queued and sent together (one round
// trip for a whole resource write on PostgreSQL); any other call, and Flush,
// sends the queue first. A queued statement's error surfaces at the next
// flush.
type WriteConn interface {
	Conn
	Queue(sql string, args ...any)
	Flush(ctx context.Context) error
}

// WriteTx is a write transaction on one connection.
type WriteTx interface {
	WriteConn
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Backend is what a database driver package supplies.
type Backend interface {
	// Name is "postgres" or "sqlite".
	Name() string
	// Begin starts a write transaction.
	Begin(ctx context.Context) (WriteTx, error)
	// Reader runs reads outside any write transaction.
	Reader() Conn
	// Retryable tells whether a failed transaction may succeed if run again
	// (deadlock, serialisation failure, database busy).
	Retryable(err error) bool
	// UniqueViolation tells whether err is a unique-constraint violation.
	UniqueViolation(err error) bool
	Ping(ctx context.Context) error
	Close() error
}

// Dialect holds the few SQL fragments that differ between backends.
type Dialect struct {
	// SkipLocked is appended to a SELECT that picks rows to claim so that
	// concurrent claimers skip each other's rows (PostgreSQL); empty where the
	// database has a single writer (SQLite).
	SkipLocked string
	// ForUpdate is appended to a SELECT that reads a row about to be updated.
	ForUpdate string
	// AuditLock serialises appends to the audit hash chain across writers;
	// empty where there is one writer.
	AuditLock string
	// Writers is how many group-commit workers run at once.
	Writers int
	// MaxBatch bounds how many Tx calls share one database transaction.
	MaxBatch int
	// SeqExpr yields the next resource sequence number (a PostgreSQL
	// sequence); empty means MAX(seq)+1, safe only with a single writer.
	SeqExpr string
}
