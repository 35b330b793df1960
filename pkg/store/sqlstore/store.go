package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/fhir/search"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// IndexEntry is one search-index row of a resource.
type IndexEntry struct {
	Param string
	Kind  store.ParamKind
	// token
	System string // "" when the token has no system
	Code   string
	// reference: "Type/id"
	Ref string
	// string and uri: Text is normalised (lower case, no accents), Raw as written
	Text, Raw string
	// date: the interval covered, Hi exclusive
	Lo, Hi time.Time
}

// Indexer extracts the search-index entries of a resource.
type Indexer func(resourceType string, body []byte) ([]IndexEntry, error)

// Options configure a Store.
type Options struct {
	Clock   clock.Clock
	Indexer Indexer
	// OnCommit, when set, is told the size and duration of each group commit.
	OnCommit func(batch int, d time.Duration)
	// OnEmit, when set, is called after a transaction that emitted events
	// commits: the outbox relay's wake-up.
	OnEmit func()
	// MaxEventBytes bounds an event (Tx.Emit answers store.ErrTooLarge
	// beyond it); 0 means store.MaxEventBytes. Only a lower bound makes
	// sense: a broker configured with a smaller maximum payload, or a test.
	MaxEventBytes int
}

// Store implements store.Store over a Backend.
type Store struct {
	be    Backend
	d     Dialect
	clock clock.Clock
	index Indexer
	com   *committer
	// onEmit wakes the outbox relay.
	onEmit   func()
	maxEvent int
	// auditKey keys the audit chain; set once after opening.
	auditKey atomic.Pointer[store.AuditKey]
}

// SetAuditKey keys the audit chain from k.From on (see store.AuditKey). It
// is set once, before the store is used: the key lives outside the
// database, so it is loaded after the database is opened.
func (s *Store) SetAuditKey(k store.AuditKey) { s.auditKey.Store(&k) }

// AuditKey returns the key set by SetAuditKey (none: the chain is unkeyed).
func (s *Store) AuditKey() store.AuditKey {
	if k := s.auditKey.Load(); k != nil {
		return *k
	}
	return store.AuditKey{}
}

var _ store.Store = (*Store)(nil)

// New returns a store over be. The schema must already be migrated.
func New(be Backend, d Dialect, o Options) *Store {
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Indexer == nil {
		o.Indexer = RegistryIndexer(search.Default())
	}
	if d.MaxBatch == 0 {
		d.MaxBatch = 128
	}
	s := &Store{be: be, d: d, clock: o.Clock, index: o.Indexer, onEmit: o.OnEmit, maxEvent: o.MaxEventBytes}
	if s.maxEvent <= 0 || s.maxEvent > store.MaxEventBytes {
		s.maxEvent = store.MaxEventBytes
	}
	s.com = newCommitter(be, d.Writers, d.MaxBatch)
	s.com.onCommit = o.OnCommit
	s.com.beforeCommit = s.chainAudit
	return s
}

// Backend returns the underlying backend (for migrations and tests).
func (s *Store) Backend() Backend { return s.be }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.be.Ping(ctx) }

// Close implements store.Store: pending writes fail, then the database closes.
func (s *Store) Close() error {
	s.com.close()
	return s.be.Close()
}

// Tx implements store.Store.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) error {
	emitted, claimed, lost := false, false, false
	err := s.com.do(ctx, func(ctx context.Context, wc WriteConn) error {
		c := &batchConn{WriteConn: wc}
		t := &tx{s: s, c: c}
		err := fn(t)
		emitted, claimed, lost = t.emitted, t.keyClaimed, t.keyLost
		if err == nil {
			// Chained with the batch's other records before it commits.
			auditLater(wc, t.auditRecords())
		}
		if err == nil {
			// Queued writes fail here, not in fn: a unique violation is then
			// a create that lost a race for the same id.
			if err = c.Flush(ctx); err != nil && s.be.UniqueViolation(err) {
				err = fmt.Errorf("%w: %v", store.ErrExists, err)
			}
		}
		return err
	})
	if err == nil && emitted && s.onEmit != nil {
		s.onEmit()
	}
	if k, ok := store.IdempotencyKeyFrom(ctx); ok {
		switch {
		case err == nil && claimed:
			k.SetClaimed()
		case lost && errors.Is(err, store.ErrKeyInUse):
			k.SetLost()
		}
	}
	return err
}

// Queued is how many write transactions wait for a writer.
func (s *Store) Queued() int { return len(s.com.jobs) + len(s.com.urgent) }

// write runs an internal write through the committer.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, c WriteConn) error) error {
	return s.com.do(ctx, fn)
}

const selectResource = `SELECT v.tenant, v.version, v.last_updated, v.deleted, v.body
FROM resources r JOIN resource_versions v
  ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version = r.version
WHERE r.res_type = $1 AND r.res_id = $2`

func scanResource(row Row, typ, id string) (store.Resource, error) {
	r := store.Resource{Type: typ, ID: id}
	var lu int64
	var body []byte
	if err := row.Scan(&r.Tenant, &r.Version, &lu, &r.Deleted, &body); err != nil {
		if isNoRows(err) {
			return r, fmt.Errorf("%s/%s: %w", typ, id, store.ErrNotFound)
		}
		return r, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	r.LastUpdated = fromMicros(lu)
	r.Body = json.RawMessage(body)
	return r, nil
}

func readCurrent(ctx context.Context, c Conn, typ, id string) (store.Resource, error) {
	r, err := scanResource(c.QueryRow(ctx, selectResource, typ, id), typ, id)
	if err != nil {
		return r, err
	}
	if r.Deleted {
		return r, fmt.Errorf("%s/%s: %w", typ, id, store.ErrGone)
	}
	return r, nil
}

// readLocked reads the current version inside a write transaction, locking
// the resource's row first where the database has row locks: a writer that
// waited for the lock then sees the version committed meanwhile (a join
// re-checked after the wait would not).
func (t *tx) readLocked(ctx context.Context, typ, id string) (store.Resource, error) {
	if t.s.d.ForUpdate == "" {
		return readCurrent(ctx, t.c, typ, id)
	}
	var version int64
	err := t.c.QueryRow(ctx, `SELECT version FROM resources WHERE res_type = $1 AND res_id = $2`+t.s.d.ForUpdate, typ, id).Scan(&version)
	if isNoRows(err) {
		return store.Resource{Type: typ, ID: id}, fmt.Errorf("%s/%s: %w", typ, id, store.ErrNotFound)
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	r := store.Resource{Type: typ, ID: id, Version: version}
	var lu int64
	var body []byte
	if err := t.c.QueryRow(ctx, `SELECT tenant, last_updated, deleted, body FROM resource_versions
WHERE res_type = $1 AND res_id = $2 AND version = $3`, typ, id, version).Scan(&r.Tenant, &lu, &r.Deleted, &body); err != nil {
		return r, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	r.LastUpdated = fromMicros(lu)
	r.Body = body
	if r.Deleted {
		return r, fmt.Errorf("%s/%s: %w", typ, id, store.ErrGone)
	}
	return r, nil
}

// Read implements store.Store.
func (s *Store) Read(ctx context.Context, typ, id string) (store.Resource, error) {
	return readCurrent(ctx, s.be.Reader(), typ, id)
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	r := store.Resource{Type: typ, ID: id, Version: version}
	var lu int64
	var body []byte
	err := s.be.Reader().QueryRow(ctx, `SELECT tenant, last_updated, deleted, body FROM resource_versions
WHERE res_type = $1 AND res_id = $2 AND version = $3`, typ, id, version).Scan(&r.Tenant, &lu, &r.Deleted, &body)
	if err != nil {
		if isNoRows(err) {
			return r, fmt.Errorf("%s/%s/_history/%d: %w", typ, id, version, store.ErrNotFound)
		}
		return r, fmt.Errorf("vread %s/%s/_history/%d: %w", typ, id, version, err)
	}
	r.LastUpdated = fromMicros(lu)
	r.Body = body
	return r, nil
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, typ, id string, p store.HistoryParams) (store.Page, error) {
	page := store.Page{Total: -1}
	count := clampCount(p.Count)
	before := int64(1 << 62)
	if p.Cursor != "" {
		v, err := decodeCursor(p.Cursor, "h")
		if err != nil {
			return page, err
		}
		before = v
	}
	rows, err := s.be.Reader().Query(ctx, `SELECT tenant, version, last_updated, deleted, body FROM resource_versions
WHERE res_type = $1 AND res_id = $2 AND version < $3 ORDER BY version DESC LIMIT $4`, typ, id, before, count+1)
	if err != nil {
		return page, fmt.Errorf("history %s/%s: %w", typ, id, err)
	}
	defer rows.Close()
	for rows.Next() {
		r := store.Resource{Type: typ, ID: id}
		var lu int64
		var body []byte
		if err := rows.Scan(&r.Tenant, &r.Version, &lu, &r.Deleted, &body); err != nil {
			return page, fmt.Errorf("history %s/%s: %w", typ, id, err)
		}
		r.LastUpdated = fromMicros(lu)
		r.Body = body
		page.Resources = append(page.Resources, r)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("history %s/%s: %w", typ, id, err)
	}
	if len(page.Resources) == 0 && p.Cursor == "" {
		return page, fmt.Errorf("%s/%s: %w", typ, id, store.ErrNotFound)
	}
	if len(page.Resources) > count {
		page.Resources = page.Resources[:count]
		page.Next = encodeCursor("h", page.Resources[count-1].Version)
	}
	return page, nil
}

func clampCount(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 1000:
		return 1000
	}
	return n
}

// tx implements store.Tx on one connection of a group commit.
type tx struct {
	s       *Store
	c       *batchConn
	emitted bool
	// audit holds the records to chain when the function returns; auto
	// says which of them the store added for a service's write (auditWrite).
	audit []store.AuditRecord
	auto  []bool
	// keyClaimed and keyLost: this transaction recorded the request's
	// idempotency key, or found it taken (claimKey).
	keyClaimed, keyLost bool
}

func (t *tx) Read(ctx context.Context, typ, id string) (store.Resource, error) {
	return t.readLocked(ctx, typ, id)
}

func (t *tx) Create(ctx context.Context, tenant string, body json.RawMessage) (store.Resource, error) {
	p, err := parseBody(body)
	if err != nil {
		return store.Resource{}, err
	}
	id := p.id
	if id == "" {
		id = store.NewID()
	} else {
		var one int
		err := t.c.QueryRow(ctx, `SELECT 1 FROM resources WHERE res_type = $1 AND res_id = $2`, p.typ, id).Scan(&one)
		if err == nil {
			return store.Resource{}, fmt.Errorf("%s/%s: %w", p.typ, id, store.ErrExists)
		}
		if !isNoRows(err) {
			return store.Resource{}, fmt.Errorf("create %s/%s: %w", p.typ, id, err)
		}
	}
	return t.put(ctx, tenant, p, id, 1, true, false)
}

func (t *tx) Update(ctx context.Context, tenant string, body json.RawMessage, ifMatch int64) (store.Resource, error) {
	p, err := parseBody(body)
	if err != nil {
		return store.Resource{}, err
	}
	if p.id == "" {
		return store.Resource{}, fmt.Errorf("%w: an update needs the resource id", store.ErrInvalid)
	}
	cur, err := t.readLocked(ctx, p.typ, p.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ifMatch > 0 {
			return store.Resource{}, err
		}
		return t.put(ctx, tenant, p, p.id, 1, true, false)
	case errors.Is(err, store.ErrGone):
		// Updating a deleted resource brings it back as a new version.
	case err != nil:
		return store.Resource{}, err
	}
	if ifMatch > 0 && cur.Version != ifMatch {
		return store.Resource{}, fmt.Errorf("%s/%s is at version %d, not %d: %w", p.typ, p.id, cur.Version, ifMatch, store.ErrVersionConflict)
	}
	if cur.Tenant != tenant {
		return store.Resource{}, fmt.Errorf("%s/%s: %w", p.typ, p.id, store.ErrNotFound)
	}
	return t.put(ctx, tenant, p, p.id, cur.Version+1, false, false)
}

func (t *tx) Delete(ctx context.Context, typ, id string, ifMatch int64) (store.Resource, error) {
	cur, err := t.readLocked(ctx, typ, id)
	if err != nil {
		return cur, err
	}
	if ifMatch > 0 && cur.Version != ifMatch {
		return store.Resource{}, fmt.Errorf("%s/%s is at version %d, not %d: %w", typ, id, cur.Version, ifMatch, store.ErrVersionConflict)
	}
	p, err := parseBody(cur.Body)
	if err != nil {
		return store.Resource{}, err
	}
	return t.put(ctx, cur.Tenant, p, id, cur.Version+1, false, true)
}

// put writes a version: the version row, the current pointer and the index.
func (t *tx) put(ctx context.Context, tenant string, p parsed, id string, version int64, create, deleted bool) (store.Resource, error) {
	if err := t.claimKey(ctx); err != nil {
		return store.Resource{}, err
	}
	now := t.s.clock.Now().Truncate(time.Millisecond)
	body, err := p.stamp(id, version, now)
	if err != nil {
		return store.Resource{}, err
	}
	var entries []IndexEntry
	if !deleted {
		entries, err = t.s.index(p.typ, body)
		if err != nil {
			return store.Resource{}, fmt.Errorf("%w: index %s/%s: %v", store.ErrInvalid, p.typ, id, err)
		}
	}
	t.c.Queue(`INSERT INTO resource_versions (res_type, res_id, version, tenant, last_updated, deleted, body)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, p.typ, id, version, tenant, micros(now), deleted, body)
	switch {
	case create:
		t.c.Queue(`INSERT INTO resources (res_type, res_id, tenant, version, deleted, seq)
VALUES ($1, $2, $3, $4, $5, `+t.s.d.nextSeq()+`)`, p.typ, id, tenant, version, deleted)
		t.c.addIndex(p.typ, id, entries)
	case deleted:
		t.c.Queue(`UPDATE resources SET version = $3, deleted = $4 WHERE res_type = $1 AND res_id = $2`, p.typ, id, version, deleted)
		deleteIndex(t.c, p.typ, id)
	default:
		t.c.Queue(`UPDATE resources SET version = $3, deleted = $4 WHERE res_type = $1 AND res_id = $2`, p.typ, id, version, deleted)
		if err := replaceIndex(ctx, t.c, p.typ, id, entries); err != nil {
			return store.Resource{}, err
		}
	}
	if a, ok := store.ActorFrom(ctx); ok {
		t.auditWrite(a, tenant, p, id, version, create, deleted)
	}
	return store.Resource{Tenant: tenant, Type: p.typ, ID: id, Version: version, LastUpdated: now, Deleted: deleted, Body: body}, nil
}

func (d Dialect) nextSeq() string {
	if d.SeqExpr != "" {
		return d.SeqExpr
	}
	return "(SELECT COALESCE(MAX(seq), 0) + 1 FROM resources)"
}

func (t *tx) Emit(ctx context.Context, e store.Event) error {
	if e.Subject == "" || e.MsgID == "" {
		return fmt.Errorf("%w: an event needs a subject and a message id", store.ErrInvalid)
	}
	headers, err := json.Marshal(e.Headers)
	if err != nil {
		return fmt.Errorf("emit %s: %w", e.MsgID, err)
	}
	// Checked here, in the writer's transaction, so that an event the broker
	// would refuse is never committed (the relay would then have nothing it
	// can publish in its place).
	if n := eventSize(e); n > t.s.maxEvent {
		return fmt.Errorf("emit %s on %s: %d bytes, more than %d: %w", e.MsgID, e.Subject, n, t.s.maxEvent, store.ErrTooLarge)
	}
	t.emitted = true
	t.c.Queue(`INSERT INTO outbox (msg_key, subject, msg_id, headers, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.Key, e.Subject, e.MsgID, string(headers), e.Data, micros(t.s.clock.Now()))
	return nil
}

// eventSize is the size of the event on the wire, headers included, as the
// broker counts it against its maximum payload (give or take the framing).
func eventSize(e store.Event) int {
	n := len(e.Subject) + len(e.Data) + len(e.MsgID) + len("NATS/1.0\r\n\r\n") + len("Nats-Msg-Id: \r\n")
	for k, v := range e.Headers {
		n += len(k) + len(v) + len(": \r\n")
	}
	return n
}

func (t *tx) MarkHandled(ctx context.Context, consumer, msgID string) (bool, error) {
	n, err := t.c.Exec(ctx, `INSERT INTO inbox (consumer, msg_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		consumer, msgID, micros(t.s.clock.Now()))
	if err != nil {
		return false, fmt.Errorf("inbox %s %s: %w", consumer, msgID, err)
	}
	return n == 1, nil
}

func (t *tx) Schedule(ctx context.Context, tm store.Timer) error {
	if tm.Key == "" || tm.Kind == "" {
		return fmt.Errorf("%w: a timer needs a key and a kind", store.ErrInvalid)
	}
	payload := []byte(tm.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	t.c.Queue(`INSERT INTO timers (tkey, tenant, kind, due, payload, state, attempts)
VALUES ($1, $2, $3, $4, $5, 'pending', 0)
ON CONFLICT (tkey) DO UPDATE SET tenant = excluded.tenant, kind = excluded.kind, due = excluded.due,
  payload = excluded.payload, state = 'pending', attempts = 0, lease_owner = NULL, lease_until = NULL, fired_at = NULL`,
		tm.Key, tm.Tenant, tm.Kind, micros(tm.Due), string(payload))
	return nil
}

func (t *tx) Cancel(ctx context.Context, key string) error {
	t.c.Queue(`DELETE FROM timers WHERE tkey = $1 AND state = 'pending'`, key)
	return nil
}

func (t *tx) CompleteTimer(ctx context.Context, key, owner string) error {
	n, err := t.c.Exec(ctx, `UPDATE timers SET state = 'fired', fired_at = $3, lease_owner = NULL, lease_until = NULL
WHERE tkey = $1 AND lease_owner = $2 AND state = 'pending'`, key, owner, micros(t.s.clock.Now()))
	if err != nil {
		return fmt.Errorf("complete timer %s: %w", key, err)
	}
	if n != 1 {
		return fmt.Errorf("timer %s: %w", key, store.ErrLeaseLost)
	}
	return nil
}

// isNoRows tells whether a single-row query found nothing. Backends report it
// as sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// RegistryIndexer indexes resources with the search parameters of reg.
func RegistryIndexer(reg *search.Registry) Indexer {
	return func(resourceType string, body []byte) ([]IndexEntry, error) {
		es, err := reg.Extract(resourceType, body)
		if err != nil {
			return nil, err
		}
		out := make([]IndexEntry, len(es))
		for i, e := range es {
			out[i] = IndexEntry(e)
		}
		return out, nil
	}
}

// auditWrite queues the audit record of a service's write of patient data
// (a resource that is a Patient or names one as its subject): which
// service, what made it act, what changed to which version, and the new
// status, so that a cancellation reads as one.
func (t *tx) auditWrite(a store.Actor, tenant string, p parsed, id string, version int64, create, deleted bool) {
	patient := patientOf(p, id)
	if patient == "" {
		return
	}
	action := "U"
	switch {
	case create:
		action = "C"
	case deleted:
		action = "D"
	}
	detail := a.Cause
	var status string
	if raw, ok := p.members["status"]; ok && json.Unmarshal(raw, &status) == nil && status != "" {
		detail += " status=" + status
	}
	t.queueAudit(store.AuditRecord{Tenant: tenant, Time: t.s.clock.Now(), Agent: a.Agent, Action: action,
		Entity: fmt.Sprintf("%s/%s/_history/%d", p.typ, id, version), Patient: patient, Outcome: "0", Detail: strings.TrimSpace(detail)}, true)
}

func (t *tx) queueAudit(r store.AuditRecord, auto bool) {
	t.audit = append(t.audit, r)
	t.auto = append(t.auto, auto)
}

// patientOf is the patient a resource is about: itself, or the Patient its
// subject (Encounter, CarePlan, CareTeam, Condition…), patient
// (EpisodeOfCare), for (Task) or beneficiary names.
func patientOf(p parsed, id string) string {
	if p.typ == "Patient" {
		return "Patient/" + id
	}
	for _, m := range []string{"subject", "patient", "for", "beneficiary"} {
		raw, ok := p.members[m]
		if !ok {
			continue
		}
		var ref struct {
			Reference string `json:"reference"`
		}
		if json.Unmarshal(raw, &ref) == nil && strings.HasPrefix(ref.Reference, "Patient/") {
			return ref.Reference
		}
	}
	return ""
}
