package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// claimKey records the request's idempotency key (store.WithIdempotencyKey)
// before the transaction's first write of data, so that the key commits with
// the write or not at all. A key already taken fails the transaction with
// store.ErrKeyInUse: on PostgreSQL a concurrent twin waits on the key's row
// until the first commits, then finds it taken; on SQLite the single writer
// serialises them.
func (t *tx) claimKey(ctx context.Context) error {
	k, ok := store.IdempotencyKeyFrom(ctx)
	if !ok || t.keyClaimed || k.Claimed() {
		return nil
	}
	n, err := t.c.Exec(ctx, `INSERT INTO idempotency_keys (scope, idem_key, hash, created_at, status, headers, body)
VALUES ($1, $2, $3, $4, 0, '{}', $5) ON CONFLICT DO NOTHING`, k.Scope, k.Key, k.Hash, micros(t.s.clock.Now()), []byte{})
	if err != nil {
		return fmt.Errorf("idempotency key %q: %w", k.Key, err)
	}
	if n == 0 {
		t.keyLost = true
		return fmt.Errorf("idempotency key %q: %w", k.Key, store.ErrKeyInUse)
	}
	t.keyClaimed = true
	return nil
}

// Idempotency implements store.Store.
func (s *Store) Idempotency() store.Idempotency { return idempotency{s} }

type idempotency struct{ s *Store }

const idemCols = `scope, idem_key, hash, created_at, status, headers, body`

func scanIdem(row Row) (store.IdempotentRequest, error) {
	var r store.IdempotentRequest
	var created int64
	var headers string
	if err := row.Scan(&r.Scope, &r.Key, &r.Hash, &created, &r.Status, &headers, &r.Body); err != nil {
		return r, err
	}
	r.Created = fromMicros(created)
	if err := json.Unmarshal([]byte(headers), &r.Header); err != nil {
		return r, fmt.Errorf("idempotency key %q: headers: %w", r.Key, err)
	}
	return r, nil
}

func (i idempotency) Get(ctx context.Context, scope, key string) (store.IdempotentRequest, error) {
	r, err := scanIdem(i.s.be.Reader().QueryRow(ctx, `SELECT `+idemCols+` FROM idempotency_keys WHERE scope = $1 AND idem_key = $2`, scope, key))
	if isNoRows(err) {
		return r, fmt.Errorf("idempotency key %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("idempotency key %q: %w", key, err)
	}
	return r, nil
}

func (i idempotency) Answer(ctx context.Context, r store.IdempotentRequest) (store.IdempotentRequest, bool, error) {
	if r.Status <= 0 {
		return r, false, fmt.Errorf("%w: an answer needs its HTTP status", store.ErrInvalid)
	}
	headers, err := json.Marshal(r.Header)
	if err != nil {
		return r, false, fmt.Errorf("idempotency key %q: %w", r.Key, err)
	}
	if r.Body == nil {
		r.Body = []byte{}
	}
	var out store.IdempotentRequest
	stored := false
	err = i.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		stored = false
		now := i.s.clock.Now()
		n, err := c.Exec(ctx, `INSERT INTO idempotency_keys (scope, idem_key, hash, created_at, status, headers, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, r.Scope, r.Key, r.Hash, micros(now), r.Status, string(headers), r.Body)
		if err != nil {
			return err
		}
		if n == 1 {
			out, stored = r, true
			out.Created = now.Truncate(time.Microsecond)
			return nil
		}
		// The key was claimed by a write: fill in its answer unless it has
		// one, or belongs to another request.
		n, err = c.Exec(ctx, `UPDATE idempotency_keys SET status = $4, headers = $5, body = $6
WHERE scope = $1 AND idem_key = $2 AND hash = $3 AND status = 0`, r.Scope, r.Key, r.Hash, r.Status, string(headers), r.Body)
		if err != nil {
			return err
		}
		out, err = scanIdem(c.QueryRow(ctx, `SELECT `+idemCols+` FROM idempotency_keys WHERE scope = $1 AND idem_key = $2`, r.Scope, r.Key))
		stored = n == 1
		return err
	})
	if err != nil {
		return r, false, fmt.Errorf("idempotency key %q: %w", r.Key, err)
	}
	return out, stored, nil
}

func (i idempotency) Purge(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := i.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var err error
		n, err = c.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, micros(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("idempotency keys purge: %w", err)
	}
	return int(n), nil
}
