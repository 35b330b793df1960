package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Outbox implements store.Store.
func (s *Store) Outbox() store.Outbox { return outbox{s} }

// Timers implements store.Store.
func (s *Store) Timers() store.Timers { return timers{s} }

// AuditLog implements store.Store.
func (s *Store) AuditLog() store.AuditLog { return auditLog{s} }

// Leases implements store.Store.
func (s *Store) Leases() store.Leases { return leases{s} }

type outbox struct{ s *Store }

func (o outbox) Pending(ctx context.Context, limit int) ([]store.OutboxRow, error) {
	rows, err := o.s.be.Reader().Query(ctx, `SELECT seq, msg_key, subject, msg_id, headers, data, created_at
FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	defer rows.Close()
	var out []store.OutboxRow
	for rows.Next() {
		var r store.OutboxRow
		var headers string
		var created int64
		if err := rows.Scan(&r.Seq, &r.Event.Key, &r.Event.Subject, &r.Event.MsgID, &headers, &r.Event.Data, &created); err != nil {
			return nil, fmt.Errorf("outbox pending: %w", err)
		}
		if err := json.Unmarshal([]byte(headers), &r.Event.Headers); err != nil {
			return nil, fmt.Errorf("outbox row %d headers: %w", r.Seq, err)
		}
		r.CreatedAt = fromMicros(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (o outbox) MarkSent(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	return o.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var sb strings.Builder
		args := []any{micros(at)}
		for i, seq := range seqs {
			if i > 0 {
				sb.WriteByte(',')
			}
			args = append(args, seq)
			sb.WriteString("$" + strconv.Itoa(len(args)))
		}
		if _, err := c.Exec(ctx, "UPDATE outbox SET sent_at = $1 WHERE seq IN ("+sb.String()+")", args...); err != nil {
			return fmt.Errorf("outbox mark sent: %w", err)
		}
		return nil
	})
}

func (o outbox) Resend(ctx context.Context, since time.Time) (int, error) {
	var n int64
	err := o.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var err error
		n, err = c.Exec(ctx, `UPDATE outbox SET sent_at = NULL WHERE sent_at >= $1`, micros(since))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox resend: %w", err)
	}
	return int(n), nil
}

func (o outbox) Purge(ctx context.Context, sentBefore time.Time) (int, error) {
	var n int64
	err := o.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var err error
		n, err = c.Exec(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, micros(sentBefore))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox purge: %w", err)
	}
	return int(n), nil
}

func (o outbox) Backlog(ctx context.Context) (int, error) {
	var n int64
	if err := o.s.be.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox backlog: %w", err)
	}
	return int(n), nil
}

func (o outbox) PurgeInbox(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := o.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var err error
		n, err = c.Exec(ctx, `DELETE FROM inbox WHERE handled_at < $1`, micros(before))
		return err
	})
	return int(n), err
}

type timers struct{ s *Store }

const timerCols = `tkey, tenant, kind, due, payload, attempts`

func scanTimers(rows Rows) ([]store.Timer, error) {
	defer rows.Close()
	var out []store.Timer
	for rows.Next() {
		var t store.Timer
		var due int64
		var payload string
		if err := rows.Scan(&t.Key, &t.Tenant, &t.Kind, &due, &payload, &t.Attempts); err != nil {
			return nil, err
		}
		t.Due = fromMicros(due)
		t.Payload = json.RawMessage(payload)
		out = append(out, t)
	}
	return out, rows.Err()
}

func (tm timers) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Timer, error) {
	// A look on a reader first: most polls find nothing due, and then need
	// no write transaction (and no wait for the writer).
	var one int
	err := tm.s.be.Reader().QueryRow(ctx, `SELECT 1 FROM timers WHERE state = 'pending' AND due <= $1
  AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1`, micros(now)).Scan(&one)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim timers: %w", err)
	}
	var out []store.Timer
	err = tm.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		rows, err := c.Query(ctx, `UPDATE timers SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
WHERE tkey IN (SELECT tkey FROM timers WHERE state = 'pending' AND due <= $3
  AND (lease_until IS NULL OR lease_until <= $3) ORDER BY due LIMIT $4`+tm.s.d.SkipLocked+`)
RETURNING `+timerCols, owner, micros(now.Add(lease)), micros(now), limit)
		if err != nil {
			return err
		}
		out, err = scanTimers(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim timers: %w", err)
	}
	return out, nil
}

func (tm timers) Pending(ctx context.Context, key string) (store.Timer, error) {
	rows, err := tm.s.be.Reader().Query(ctx, `SELECT `+timerCols+` FROM timers WHERE tkey = $1 AND state = 'pending'`, key)
	if err != nil {
		return store.Timer{}, fmt.Errorf("timer %s: %w", key, err)
	}
	ts, err := scanTimers(rows)
	if err != nil {
		return store.Timer{}, fmt.Errorf("timer %s: %w", key, err)
	}
	if len(ts) == 0 {
		return store.Timer{}, fmt.Errorf("timer %s: %w", key, store.ErrNotFound)
	}
	return ts[0], nil
}

func (tm timers) NextDue(ctx context.Context) (time.Time, bool, error) {
	var due *int64
	if err := tm.s.be.Reader().QueryRow(ctx, `SELECT MIN(due) FROM timers WHERE state = 'pending'`).Scan(&due); err != nil {
		return time.Time{}, false, fmt.Errorf("next timer: %w", err)
	}
	if due == nil {
		return time.Time{}, false, nil
	}
	return fromMicros(*due), true, nil
}

type leases struct{ s *Store }

func (l leases) Acquire(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	var n int64
	err := l.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		var err error
		n, err = c.Exec(ctx, `INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE leases.owner = excluded.owner OR leases.until <= $4`, name, owner, micros(now.Add(ttl)), micros(now))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return n == 1, nil
}

func (l leases) Release(ctx context.Context, name, owner string) error {
	return l.s.write(ctx, func(ctx context.Context, c WriteConn) error {
		_, err := c.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND owner = $2`, name, owner)
		return err
	})
}

// Audit queues a record for the tenant's hash chain; the records of every
// job of a group commit are chained together just before it commits
// (chainAudit), so that a transaction that writes many resources locks and
// reads the chain's head once, not once per record, and holds the lock for
// the commit only.
func (t *tx) Audit(ctx context.Context, r store.AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = t.s.clock.Now()
	}
	t.queueAudit(r, false)
	return nil
}

// auditRecords returns the transaction's records to chain: a handler that
// audits a write itself (with its own agent and detail) is not audited
// twice for it.
func (t *tx) auditRecords() []store.AuditRecord {
	if len(t.audit) == 0 {
		return nil
	}
	explicit := map[string]bool{}
	for i, r := range t.audit {
		if !t.auto[i] {
			explicit[r.Entity] = true
		}
	}
	recs := t.audit[:0:0]
	for i, r := range t.audit {
		if !t.auto[i] || !explicit[r.Entity] {
			recs = append(recs, r)
		}
	}
	t.audit, t.auto = nil, nil
	return recs
}

// chainAudit appends records to their tenants' hash chains, in the
// transaction about to commit: each record's hash covers the hash of the
// tenant's previous record and this record's fields (keyed, see
// store.AuditKey), so that removing or changing a record breaks every link
// after it. Seq is global and gapless, so that removing a tenant's last
// record shows too. Where several writers commit at once (PostgreSQL), the
// chain's lock is taken here, at the end of the batch, and held until its
// commit.
func (s *Store) chainAudit(ctx context.Context, c WriteConn, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if s.d.AuditLock != "" {
		// Sent with the transaction's queued writes, before the head is
		// read: the head read after the lock is the committed one.
		c.Queue(s.d.AuditLock)
	}
	key := s.AuditKey()
	var seq int64
	heads := map[string]string{}
	for i, r := range recs {
		prev, ok := heads[r.Tenant]
		if !ok {
			var last int64
			err := c.QueryRow(ctx, `SELECT (SELECT COALESCE(MAX(seq), 0) FROM audit),
  COALESCE((SELECT hash FROM audit WHERE tenant = $1 ORDER BY seq DESC LIMIT 1), '')`, r.Tenant).Scan(&last, &prev)
			if err != nil {
				return fmt.Errorf("audit head: %w", err)
			}
			if i == 0 {
				seq = last
			}
		}
		r.Time = r.Time.UTC().Truncate(time.Microsecond)
		seq++
		r.Seq = seq
		r.PrevHash = prev
		r.Hash = key.Hash(r)
		heads[r.Tenant] = r.Hash
		c.Queue(`INSERT INTO audit (seq, tenant, at, agent, action, entity, patient, outcome, detail, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			r.Seq, r.Tenant, micros(r.Time), r.Agent, r.Action, r.Entity, r.Patient, r.Outcome, r.Detail, r.PrevHash, r.Hash)
	}
	return nil
}

type auditLog struct{ s *Store }

func (a auditLog) Find(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT seq, tenant, at, agent, action, entity, patient, outcome, detail, prev_hash, hash FROM audit WHERE tenant = $1`
	args := []any{f.Tenant}
	if f.Patient != "" {
		args = append(args, f.Patient)
		q += ` AND patient = $` + strconv.Itoa(len(args))
	}
	if f.Seq != 0 {
		args = append(args, f.Seq)
		q += ` AND seq = $` + strconv.Itoa(len(args))
	}
	if f.Before > 0 {
		args = append(args, f.Before)
		q += ` AND seq < $` + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	q += ` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))
	return a.query(ctx, q, args...)
}

func (a auditLog) Heads(ctx context.Context) ([]store.AuditRecord, error) {
	return a.query(ctx, `SELECT seq, tenant, at, agent, action, entity, patient, outcome, detail, prev_hash, hash
FROM audit a WHERE seq = (SELECT MAX(seq) FROM audit b WHERE b.tenant = a.tenant) ORDER BY tenant`)
}

func (a auditLog) Hash(r store.AuditRecord) string { return a.s.AuditKey().Hash(r) }

func (a auditLog) List(ctx context.Context, afterSeq int64, limit int) ([]store.AuditRecord, error) {
	return a.query(ctx, `SELECT seq, tenant, at, agent, action, entity, patient, outcome, detail, prev_hash, hash
FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
}

func (a auditLog) query(ctx context.Context, q string, args ...any) ([]store.AuditRecord, error) {
	rows, err := a.s.be.Reader().Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var at int64
		if err := rows.Scan(&r.Seq, &r.Tenant, &at, &r.Agent, &r.Action, &r.Entity, &r.Patient, &r.Outcome, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("audit list: %w", err)
		}
		r.Time = fromMicros(at)
		out = append(out, r)
	}
	return out, rows.Err()
}
