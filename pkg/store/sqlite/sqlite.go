// Package sqlite opens the embedded SQLite store backend (modernc.org/sqlite,
// pure Go): one file under the data directory, WAL journal, full sync, one
// writer connection fed by the group committer and a small pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// Options configure Open.
type Options struct {
	sqlstore.Options
	// Readers bounds the read connections (default 4).
	Readers int
	// RelaxedSync syncs the write-ahead log at checkpoints only
	// (synchronous NORMAL) instead of at every commit: a commit survives
	// the process's crash but not a power cut. For a demo's invented data
	// only.
	RelaxedSync bool
}

// Open opens (creating if needed) the database file at path, applies pending
// migrations and returns the store.
func Open(ctx context.Context, path string, o Options) (*sqlstore.Store, error) {
	be, err := connect(ctx, path, o.Readers, o.RelaxedSync)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, be); err != nil {
		_ = be.Close()
		return nil, err
	}
	// A resource's sequence number orders its type's search pages; the
	// (res_type, seq) index answers this in one lookup, where a global
	// MAX(seq) would scan every resource at every create.
	return sqlstore.New(be, sqlstore.Dialect{Writers: 1,
		SeqExpr: "(SELECT IFNULL(MAX(seq), 0) + 1 FROM resources WHERE res_type = $1)"}, o.Options), nil
}

// Migrate applies pending migrations and returns the versions applied.
func Migrate(ctx context.Context, be *Backend) ([]int, error) {
	return sqlstore.MigrateSchema(ctx, be, sqlstore.SQLiteTypes, "")
}

// Backend is the database/sql implementation of sqlstore.Backend for SQLite.
type Backend struct {
	w, r *sql.DB
	// cp is the checkpointer's connection (see checkpoints).
	cp            *sql.DB
	stop, stopped chan struct{}
	closeOnce     sync.Once
	// wc is the one writer connection, held for the store's life, so that
	// its prepared statements are reused from one transaction to the next.
	// Transactions on it are plain BEGIN IMMEDIATE … COMMIT.
	wc *sql.Conn
	// stmts caches the writer's prepared statements: parsing SQL costs more
	// than running it for the small statements a write is made of.
	stmts stmtCache
	// rstmts does the same for the readers.
	rstmts stmtCache
}

// stmtCache holds prepared statements by SQL text, up to a bound.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const maxCachedStmts = 512

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

func (c *stmtCache) get(ctx context.Context, db preparer, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, anonymousParams(query))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	if prev, ok := c.m[query]; ok {
		_ = st.Close()
		return prev, nil
	}
	if len(c.m) >= maxCachedStmts {
		// Statements built for many rows at once vary; start over rather
		// than grow without bound.
		for k, v := range c.m {
			_ = v.Close()
			delete(c.m, k)
		}
	}
	c.m[query] = st
	return st, nil
}

// anonymousParams returns query with its parameters $1, $2, … $n written
// as plain ?, when each appears once and in that order (a multi-row INSERT,
// most statements); otherwise query as it is. SQLite names a $N parameter,
// and the driver looks up each parameter's name when it binds — a search
// through all the statement's names, so binding the 1,280 values of a
// 256-row index INSERT took longer than inserting them. An anonymous ?
// has no name to look up.
func anonymousParams(query string) string {
	var b strings.Builder
	next, quoted, from := 1, false, 0
	for i := 0; i < len(query); i++ {
		switch ch := query[i]; {
		case ch == '\'':
			quoted = !quoted
		case ch == '?' && !quoted:
			return query
		case ch == '$' && !quoted:
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(query[i+1 : j])
			if err != nil || n != next {
				return query
			}
			next++
			b.WriteString(query[from:i])
			b.WriteByte('?')
			from = j
			i = j - 1
		}
	}
	if next == 1 {
		return query
	}
	b.WriteString(query[from:])
	return b.String()
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.m {
		_ = v.Close()
		delete(c.m, k)
	}
}

// Connect opens the writer and reader pools on the file at path.
func Connect(ctx context.Context, path string, readers int) (*Backend, error) {
	return connect(ctx, path, readers, false)
}

func connect(ctx context.Context, path string, readers int, relaxed bool) (*Backend, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	if readers <= 0 {
		readers = 4
	}
	// WAL lets readers run beside the one writer; synchronous(FULL) syncs the
	// WAL at every commit, so what was acknowledged survives a power cut;
	// busy_timeout makes a second process wait for the lock instead of
	// failing at once; temp_store(MEMORY) keeps the savepoint journals of
	// the group commit in memory instead of a temporary file.
	q := url.Values{}
	sync := "synchronous(FULL)"
	if relaxed {
		sync = "synchronous(NORMAL)"
	}
	// mmap_size lets every connection read pages from the operating system's
	// cache without a read call each (writes still go through the log).
	for _, p := range []string{"journal_mode(WAL)", sync, "busy_timeout(10000)", "foreign_keys(1)", "temp_store(MEMORY)",
		"mmap_size(" + strconv.Itoa(mmapSize) + ")"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	// The writer keeps a larger page cache (the index pages a discharge's
	// writes touch stay in memory) and never checkpoints: copying the log
	// back into the database is the checkpointer's work, on its own
	// connection, so that a commit does not pay for it (docs/architecture.md, "Write path").
	w, err := sql.Open("sqlite", dsn+"&_pragma=cache_size(-"+strconv.Itoa(writerCacheKiB)+")&_pragma=wal_autocheckpoint(0)")
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
	wc, err := w.Conn(ctx)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		_ = wc.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	// The checkpointer waits 100 ms at most for readers of the old log:
	// while a RESTART waits, new writes wait too.
	cp, err := sql.Open("sqlite", dsn+"&_pragma=busy_timeout(100)")
	if err != nil {
		_ = r.Close()
		_ = wc.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	cp.SetMaxOpenConns(1)
	b := &Backend{w: w, wc: wc, r: r, cp: cp, stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.checkpoints()
	return b, nil
}

const (
	mmapSize       = 1 << 30 // address space only: pages come from the OS cache
	writerCacheKiB = 64 << 10
	// checkpointEvery is how often the checkpointer copies the log into
	// the database; restartAt is the log size (in pages) past which it
	// waits for the writer to let it start the log over, so that the
	// log stays bounded under a sustained load.
	checkpointEvery = 200 * time.Millisecond
	restartAt       = 64 << 10
)

// checkpoints copies committed pages from the write-ahead log into the
// database beside the writer (PASSIVE: it never blocks a commit), and
// restarts the log when it has grown past restartAt pages.
func (b *Backend) checkpoints() {
	defer close(b.stopped)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	mode := "PASSIVE"
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		var busy, logPages, done int
		err := b.cp.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logPages, &done)
		if err != nil {
			slog.Default().Warn("sqlite checkpoint", "mode", mode, "err", err)
			continue
		}
		mode = "PASSIVE"
		if logPages > restartAt {
			// A RESTART checkpoint waits (busy_timeout) for readers of
			// the old log and holds the next writer until it is done.
			mode = "RESTART"
		}
	}
}

// Name implements sqlstore.Backend.
func (b *Backend) Name() string { return "sqlite" }

// Begin implements sqlstore.Backend.
// BEGIN IMMEDIATE takes the write lock at once, so that a second process
// waits (busy_timeout) at the start of a transaction rather than failing in
// its middle.
func (b *Backend) Begin(ctx context.Context) (sqlstore.WriteTx, error) {
	if _, err := b.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	return &sqlTx{conn: conn{q: stmtConn{b: b}}, b: b}, nil
}

// Reader implements sqlstore.Backend.
func (b *Backend) Reader() sqlstore.Conn { return conn{q: stmtDB{db: b.r, c: &b.rstmts}} }

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
	b.closeOnce.Do(func() { close(b.stop) })
	<-b.stopped
	b.stmts.close()
	b.rstmts.close()
	// A last checkpoint leaves the database whole in its file.
	_, _ = b.cp.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(b.cp.Close(), b.r.Close(), b.wc.Close(), b.w.Close())
}

// stmtConn runs statements on the writer connection through its cache.
type stmtConn struct{ b *Backend }

func (s stmtConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if len(args) == 0 {
		// Statements without arguments (savepoints, migrations) may hold
		// several statements, which a prepared statement cannot.
		return s.b.wc.ExecContext(ctx, query)
	}
	st, err := s.b.stmts.get(ctx, s.b.wc, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s stmtConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.b.stmts.get(ctx, s.b.wc, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (s stmtConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.b.stmts.get(ctx, s.b.wc, query)
	if err != nil {
		return s.b.wc.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// stmtDB runs reads through the readers' cache.
type stmtDB struct {
	db *sql.DB
	c  *stmtCache
}

func (s stmtDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, query, args...)
}

func (s stmtDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.c.get(ctx, s.db, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (s stmtDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.c.get(ctx, s.db, query)
	if err != nil {
		return s.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
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
	b      *Backend
	queued error
}

func (t *sqlTx) Queue(query string, args ...any) {
	if t.queued != nil {
		return
	}
	if _, err := t.conn.q.ExecContext(context.Background(), query, args...); err != nil {
		t.queued = err
	}
}

func (t *sqlTx) Flush(context.Context) error {
	err := t.queued
	t.queued = nil
	return err
}

func (t *sqlTx) Commit(ctx context.Context) error {
	if err := t.Flush(ctx); err != nil {
		_ = t.Rollback(ctx)
		return err
	}
	if _, err := t.b.wc.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		_ = t.Rollback(ctx)
		return err
	}
	return nil
}

// Rollback ends the transaction; a rollback after SQLite already ended it
// (an error that aborts the transaction) is not an error.
func (t *sqlTx) Rollback(ctx context.Context) error {
	t.queued = nil
	_, err := t.b.wc.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err != nil && strings.Contains(err.Error(), "no transaction is active") {
		return nil
	}
	return err
}
