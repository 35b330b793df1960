package sqlstore

import "context"

// A service may keep its own tables (the outcomes projection, migration
// 0004) next to the resources. ExecSQL and QueryRowSQL run its statements
// inside a store transaction, so that they commit with the transaction's
// resource writes, events and inbox mark; QuerySQL reads them outside any
// transaction, streaming. Statements use $1, $2… placeholders and SQL that
// both backends accept.

// ExecSQL runs a statement inside the transaction.
func (t *tx) ExecSQL(ctx context.Context, sql string, args ...any) (int64, error) {
	if err := t.claimKey(ctx); err != nil {
		return 0, err
	}
	return t.c.Exec(ctx, sql, args...)
}

// QueryRowSQL reads one row inside the transaction.
func (t *tx) QueryRowSQL(ctx context.Context, sql string, args ...any) Row {
	return t.c.QueryRow(ctx, sql, args...)
}

// QuerySQL reads rows outside any transaction.
func (s *Store) QuerySQL(ctx context.Context, sql string, args ...any) (Rows, error) {
	return s.be.Reader().Query(ctx, sql, args...)
}
