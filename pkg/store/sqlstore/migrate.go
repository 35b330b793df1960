package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Types fills the placeholders of the migrations for one database:
// {{BOOL}}, {{JSON}}, {{BYTES}}, {{SERIAL}} (an auto-increment primary key),
// {{PATTERN_OPS}} (an index operator class for prefix matches) and
// {{SEQUENCE}} (the resource sequence, where the database has sequences).
type Types map[string]string

// PostgresTypes and SQLiteTypes are the two backends' types.
var (
	PostgresTypes = Types{"BOOL": "BOOLEAN", "JSON": "JSONB", "BYTES": "BYTEA", "SERIAL": "BIGSERIAL PRIMARY KEY",
		"PATTERN_OPS": " text_pattern_ops", "SEQUENCE": "CREATE SEQUENCE resource_seq;"}
	SQLiteTypes = Types{"BOOL": "INTEGER", "JSON": "TEXT", "BYTES": "BLOB", "SERIAL": "INTEGER PRIMARY KEY AUTOINCREMENT",
		"PATTERN_OPS": "", "SEQUENCE": ""}
)

// MigrateSchema applies Passerelle's migrations, written once with the
// placeholders of Types.
func MigrateSchema(ctx context.Context, be Backend, types Types, lock string) ([]int, error) {
	return Migrate(ctx, be, rendered{migrations, types}, "migrations", lock)
}

// rendered serves the migrations with their placeholders filled.
type rendered struct {
	fs    embed.FS
	types Types
}

func (r rendered) Open(name string) (fs.File, error) { return r.fs.Open(name) }

func (r rendered) ReadFile(name string) ([]byte, error) {
	b, err := r.fs.ReadFile(name)
	if err != nil {
		return nil, err
	}
	s := string(b)
	for k, v := range r.types {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		return nil, fmt.Errorf("%s: unknown placeholder at %q", name, s[i:min(len(s), i+20)])
	}
	return []byte(s), nil
}

func (r rendered) Glob(pattern string) ([]string, error) { return fs.Glob(r.fs, pattern) }

// Migrate applies the migrations in dir of fsys (files NNNN_name.sql, in
// order) that the database has not applied yet. Each runs in its own
// transaction with its version record, so a failed migration leaves nothing
// behind; lock, when set, is run first in each transaction to keep two
// processes from migrating at once. It returns the versions applied.
func Migrate(ctx context.Context, be Backend, fsys fs.FS, dir, lock string) ([]int, error) {
	files, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	sort.Strings(files)
	tx, err := be.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if lock != "" {
		if _, err := tx.Exec(ctx, lock); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("migrations lock: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("migrations table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("migrations table: %w", err)
	}
	var applied []int
	for _, f := range files {
		name := f[strings.LastIndex(f, "/")+1:]
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return applied, fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", name, err)
		}
		did, err := migrateOne(ctx, be, lock, version, name, string(body))
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", name, err)
		}
		if did {
			applied = append(applied, version)
		}
	}
	return applied, nil
}

func migrateOne(ctx context.Context, be Backend, lock string, version int, name, body string) (bool, error) {
	tx, err := be.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if lock != "" {
		if _, err := tx.Exec(ctx, lock); err != nil {
			return false, err
		}
	}
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, version).Scan(&one)
	if err == nil {
		return false, nil
	}
	if !isNoRows(err) {
		return false, err
	}
	if _, err := tx.Exec(ctx, body); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		version, name, time.Now().UnixMicro()); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
