package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Messages implements store.Store.
func (s *Store) Messages() store.MessageLog { return messageLog{s} }

const messageCols = `seq, id, tenant, channel, sender, msg_key, hash, control_id, event, patient, received_at, status, response, response_code, raw`

func scanMessage(row Row) (store.Message, int64, error) {
	var m store.Message
	var seq, received int64
	err := row.Scan(&seq, &m.ID, &m.Tenant, &m.Channel, &m.Sender, &m.Key, &m.Hash, &m.ControlID, &m.Event, &m.Patient,
		&received, &m.Status, &m.Response, &m.ResponseCode, &m.Raw)
	m.Received = fromMicros(received)
	return m, seq, err
}

func (t *tx) PutMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	existing, _, err := scanMessage(t.c.QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE tenant = $1 AND channel = $2 AND msg_key = $3`+t.s.d.ForUpdate,
		m.Tenant, m.Channel, m.Key))
	if err == nil {
		return existing, false, nil
	}
	if !isNoRows(err) {
		return m, false, fmt.Errorf("archive %s: %w", m.Key, err)
	}
	if err := t.claimKey(ctx); err != nil {
		return m, false, err
	}
	if m.ID == "" {
		m.ID = store.NewID()
	}
	if m.Received.IsZero() {
		m.Received = t.s.clock.Now()
	}
	if m.Response == nil {
		m.Response = []byte{}
	}
	if m.Raw == nil {
		m.Raw = []byte{}
	}
	t.c.Queue(`INSERT INTO messages (id, tenant, channel, sender, msg_key, hash, control_id, event, patient, received_at, status, response, response_code, raw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		m.ID, m.Tenant, m.Channel, m.Sender, m.Key, m.Hash, m.ControlID, m.Event, m.Patient, micros(m.Received), m.Status, m.Response, m.ResponseCode, m.Raw)
	if a, ok := store.ActorFrom(ctx); ok {
		t.queueAudit(store.AuditRecord{Tenant: m.Tenant, Time: t.s.clock.Now(), Agent: a.Agent, Action: "C",
			Entity: store.MessageEntity(m.ID), Patient: m.Patient, Outcome: "0", Detail: strings.TrimSpace(a.Cause + " status=" + m.Status)}, true)
	}
	return m, true, nil
}

func (t *tx) SetMessageStatus(ctx context.Context, id, status, patient string) error {
	const set = `UPDATE messages SET status = $2, patient = CASE WHEN $3 = '' THEN patient ELSE $3 END WHERE id = $1`
	if err := t.claimKey(ctx); err != nil {
		return err
	}
	a, audited := store.ActorFrom(ctx)
	if !audited {
		n, err := t.c.Exec(ctx, set, id, status, patient)
		if err != nil {
			return fmt.Errorf("message %s status: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("message %s: %w", id, store.ErrNotFound)
		}
		return nil
	}
	// The same round trip returns what the audit record names.
	var tenant, pat string
	err := t.c.QueryRow(ctx, set+` RETURNING tenant, patient`, id, status, patient).Scan(&tenant, &pat)
	if isNoRows(err) {
		return fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("message %s status: %w", id, err)
	}
	t.queueAudit(store.AuditRecord{Tenant: tenant, Time: t.s.clock.Now(), Agent: a.Agent, Action: "U",
		Entity: store.MessageEntity(id), Patient: pat, Outcome: "0", Detail: strings.TrimSpace(a.Cause + " status=" + status)}, true)
	return nil
}

type messageLog struct{ s *Store }

func (l messageLog) Get(ctx context.Context, id string) (store.Message, error) {
	m, _, err := scanMessage(l.s.be.Reader().QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE id = $1`, id))
	if isNoRows(err) {
		return m, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	return m, err
}

func (l messageLog) FindKey(ctx context.Context, tenant, channel, key string) (store.Message, error) {
	m, _, err := scanMessage(l.s.be.Reader().QueryRow(ctx, `SELECT `+messageCols+` FROM messages WHERE tenant = $1 AND channel = $2 AND msg_key = $3`, tenant, channel, key))
	if isNoRows(err) {
		return m, fmt.Errorf("message %s: %w", key, store.ErrNotFound)
	}
	return m, err
}

func (l messageLog) List(ctx context.Context, f store.MessageFilter) ([]store.Message, int64, error) {
	b := &sqlBuilder{}
	where := "1 = 1"
	for _, c := range []struct{ col, v string }{{"tenant", f.Tenant}, {"channel", f.Channel}, {"sender", f.Sender},
		{"control_id", f.ControlID}, {"patient", f.Patient}, {"status", f.Status}} {
		if c.v != "" {
			where += " AND " + c.col + " = " + b.arg(c.v)
		}
	}
	if f.Before > 0 {
		where += " AND seq < " + b.arg(f.Before)
	}
	limit := clampCount(f.Limit)
	rows, err := l.s.be.Reader().Query(ctx, `SELECT `+messageCols+` FROM messages WHERE `+where+` ORDER BY seq DESC LIMIT `+strconv.Itoa(limit+1), b.args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	var next, last int64
	for rows.Next() {
		m, seq, err := scanMessage(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list messages: %w", err)
		}
		if len(out) == limit {
			next = last
			break
		}
		out = append(out, m)
		last = seq
	}
	return out, next, rows.Err()
}
