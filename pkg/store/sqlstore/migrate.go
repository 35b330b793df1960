package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

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
