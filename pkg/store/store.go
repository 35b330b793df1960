// Package store defines the one persistence contract of Passerelle: FHIR
// resources with versions, history and search, the transactional outbox, the
// inbox of handled messages, durable timers, the audit trail and the
// idempotency keys of client requests, and the outcomes service's projection
// (one record per patient). Two backends
// implement it (pkg/store/postgres and pkg/store/sqlite) and both pass the
// conformance suite in pkg/store/storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/google/uuid"
	"strings"
	"sync"
	"time"
)

// Errors returned by Store methods. Backends wrap them; check with errors.Is.
var (
	// ErrNotFound: no such resource, version, timer or dead letter.
	ErrNotFound = errors.New("not found")
	// ErrGone: the resource existed and was deleted.
	ErrGone = errors.New("deleted")
	// ErrVersionConflict: an update named a version that is not the current one
	// (HTTP 412 for If-Match).
	ErrVersionConflict = errors.New("version conflict")
	// ErrExists: a create named an id that is already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the input cannot be stored as given (bad JSON, no resourceType,
	// unknown search parameter, malformed cursor).
	ErrInvalid = errors.New("invalid")
	// ErrLeaseLost: a timer's lease was taken over before it completed.
	ErrLeaseLost = errors.New("lease lost")
	// ErrTooLarge: an event is larger than MaxEventBytes (Tx.Emit). The
	// transaction that emits it must not commit: the edges answer 413 (FHIR)
	// or AR (HL7 v2), so that the sender is told rather than acknowledged.
	ErrTooLarge = errors.New("too large")
)

// MaxEventBytes bounds an event's subject, headers and data together, checked
// by Tx.Emit. It stays well below the broker's maximum payload (NATS: 1 MB by
// default), so that an event accepted into the outbox is one the broker takes:
// one it refused would otherwise stop every event behind it. Large content
// (letters, documents, raw messages) is stored and referred to, never carried.
const MaxEventBytes = 512 << 10

// Resource is one stored version of a FHIR resource. Body is the full JSON of
// that version, with meta.versionId and meta.lastUpdated set by the store.
type Resource struct {
	Tenant      string
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Body        json.RawMessage
}

// Event is one outbox row: a message to publish on the bus once the
// transaction that wrote it commits.
type Event struct {
	Subject string
	// MsgID de-duplicates the message on the bus (Nats-Msg-Id) and in inboxes.
	MsgID string
	// Key orders events: rows with the same key are published in commit order.
	// Usually "<Type>/<id>".
	Key     string
	Headers map[string]string
	Data    []byte
}

// OutboxRow is a stored Event with its position and publication state.
type OutboxRow struct {
	Seq       int64
	Event     Event
	CreatedAt time.Time
	SentAt    *time.Time
}

// Timer is a durable timer: at Due, the timer runner hands it to the handler
// registered for Kind. Key is unique among pending timers: scheduling the same
// key again replaces the pending one.
type Timer struct {
	Key     string
	Tenant  string
	Kind    string
	Due     time.Time
	Payload json.RawMessage
	// Attempts counts how many times the timer has been claimed.
	Attempts int
}

// AuditRecord is one entry of the append-only audit trail. The store chains
// each tenant's entries by hash (PrevHash is the hash of the tenant's
// previous record) so that `passerelle audit verify` can find a broken link.
type AuditRecord struct {
	Seq      int64
	Tenant   string
	Time     time.Time
	Agent    string // who: "PractitionerRole/<id>", "Device/<client>", "System/<service>"
	Action   string // C, R, U, D, E (FHIR AuditEvent.action)
	Entity   string // what: "<Type>/<id>[/_history/<v>]" or a search
	Patient  string // "Patient/<id>" when the entity is patient data
	Outcome  string // "0" success, "4" minor failure, "8" serious failure
	Detail   string
	PrevHash string
	Hash     string
}

// TokenCounter is a Store that counts its resources by token value in one
// pass (the SQL store does): a tenant's resources of a type, by the code
// they have for a token parameter, deleted ones left out.
type TokenCounter interface {
	CountTokens(ctx context.Context, tenant, typ, param string) (map[string]int, error)
}

// Store is the persistence contract shared by every backend.
type Store interface {
	// Read returns the current version. ErrNotFound, ErrGone.
	Read(ctx context.Context, typ, id string) (Resource, error)
	// VRead returns one version. ErrNotFound.
	VRead(ctx context.Context, typ, id string, version int64) (Resource, error)
	// History returns the versions of one resource, newest first. ErrNotFound.
	History(ctx context.Context, typ, id string, p HistoryParams) (Page, error)
	// Search returns current, non-deleted resources of one type matching every
	// parameter, in a stable order, a page at a time. ErrInvalid.
	Search(ctx context.Context, q Query) (Page, error)

	// Tx runs fn in one database transaction: its resource writes, outbox
	// events, inbox marks, timers and audit records commit together or not at
	// all. fn's error aborts the transaction and is returned as is. fn may be
	// called again if the backend must retry the transaction (deadlock,
	// serialisation failure), so it must not have effects outside tx.
	Tx(ctx context.Context, fn func(Tx) error) error

	// Outbox is used by the relay that publishes events.
	Outbox() Outbox
	// Timers is used by the timer runner.
	Timers() Timers
	// AuditLog reads and verifies the audit trail.
	AuditLog() AuditLog
	// Leases gives time-bound exclusive roles to one replica.
	Leases() Leases
	// Messages reads the archive of inbound hospital messages.
	Messages() MessageLog
	// Idempotency keeps the API's idempotency keys with their answers.
	Idempotency() Idempotency

	// ScanOutcomeRecords calls fn with the text of every outcome record of
	// tenant, in no particular order: its Record, followed by its Tasks when
	// tasks is set (the two parts concatenate into one record's text). fn is
	// called on the caller's goroutine, one record at a time, while the
	// store reads the next ones ahead in bounded batches: a scan over a
	// million records keeps little in memory. fn's error stops the scan
	// and is returned as is.
	ScanOutcomeRecords(ctx context.Context, tenant string, tasks bool, fn func(text string) error) error

	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Close releases the store; pending Tx calls fail.
	Close() error
}

// Tx is the view of one write transaction.
type Tx interface {
	// Read returns the current version as seen inside the transaction.
	Read(ctx context.Context, typ, id string) (Resource, error)
	// Create stores version 1 of a resource. The body's "id" is used when set
	// (ErrExists if taken), otherwise one is assigned. Returns the stored version.
	Create(ctx context.Context, tenant string, body json.RawMessage) (Resource, error)
	// Update stores a new version. ifMatch > 0 requires the current version to
	// be ifMatch (ErrVersionConflict otherwise). A missing resource is created
	// when ifMatch is 0 (update as create, FHIR's PUT), ErrNotFound otherwise.
	Update(ctx context.Context, tenant string, body json.RawMessage, ifMatch int64) (Resource, error)
	// Delete marks the resource deleted as a new version. ErrNotFound.
	Delete(ctx context.Context, typ, id string, ifMatch int64) (Resource, error)

	// Emit adds an event to the outbox. ErrInvalid; ErrTooLarge for an event
	// larger than MaxEventBytes.
	Emit(ctx context.Context, e Event) error
	// MarkHandled records that consumer handled msgID. It returns false when
	// the pair was already recorded: the caller must then do nothing more.
	MarkHandled(ctx context.Context, consumer, msgID string) (bool, error)
	// Schedule creates or replaces the pending timer with t.Key.
	Schedule(ctx context.Context, t Timer) error
	// Cancel removes the pending timer with key, if any.
	Cancel(ctx context.Context, key string) error
	// CompleteTimer marks a claimed timer fired. It fails with ErrLeaseLost if
	// owner no longer holds its lease, which rolls back the whole transaction.
	CompleteTimer(ctx context.Context, key, owner string) error
	// Audit appends a record to the audit trail. Records are chained when
	// the transaction's function returns: Seq, PrevHash and Hash are the
	// store's to set.
	Audit(ctx context.Context, r AuditRecord) error
	// PutMessage archives an inbound message unless one with the same
	// (Tenant, Channel, Key) is archived: then it returns that one and false.
	PutMessage(ctx context.Context, m Message) (Message, bool, error)
	// SetMessageStatus records what became of an archived message.
	SetMessageStatus(ctx context.Context, id, status, patient string) error

	// OutcomeRecord returns a patient's outcome record as seen inside the
	// transaction. ErrNotFound.
	OutcomeRecord(ctx context.Context, tenant, patient string) (OutcomeRecord, error)
	// PutOutcomeRecord stores r if the stored record is still at r.Version
	// (0: none is stored yet, and r creates it), and returns the new version
	// (r.Version+1). ErrVersionConflict when the version moved; ErrInvalid
	// without a tenant or a patient. Like a resource write, it claims the
	// context's idempotency key (WithIdempotencyKey).
	PutOutcomeRecord(ctx context.Context, r OutcomeRecord) (int64, error)
}

// OutcomeRecord is one patient's record in the outcomes service's
// projection (docs/architecture.md, "Storage"): written by its consumers in
// their inbox transactions, read in one pass by every evaluation. The store
// keeps the two texts as given (pkg/outcome's encoding): Record holds the
// patient, stays, episodes and death; Tasks the tasks, apart because only
// some measures read them.
type OutcomeRecord struct {
	Tenant  string
	Patient string
	// Version counts the record's writes (1 once created): optimistic
	// concurrency between consumers.
	Version int64
	Record  string
	Tasks   string
}

// Message is an archived inbound hospital message: what was received, from
// whom, when, and the answer given.
type Message struct {
	ID      string
	Tenant  string
	Channel string // "fhir" or "hl7v2"
	// Sender is the sending facility's FINESS.
	Sender string
	// Key identifies the message for de-duplication within its channel.
	Key string
	// Hash is the SHA-256 of the content, to tell a re-send from a different
	// message reusing the key.
	Hash string
	// ControlID is MSH-10 or the MessageHeader id.
	ControlID string
	// Event is the intake event (admit, discharge, cancel, death, update),
	// or "ignored".
	Event string
	// Patient is "Patient/<id>" once the message is applied.
	Patient  string
	Received time.Time
	// Status: accepted (stored, to apply), rejected (answered with an
	// error), applied, failed (dead-lettered).
	Status string
	// Response is the answer given: a response Bundle, an OperationOutcome
	// or an ACK; ResponseCode its HTTP status (0 for MLLP).
	Response     []byte
	ResponseCode int
	Raw          []byte
}

// MessageEntity names an archived message in the audit trail: its place in
// the message archive's API, not a FHIR resource.
func MessageEntity(id string) string { return "api/messages/" + id }

// MessageFilter selects archived messages; empty fields match all.
type MessageFilter struct {
	Tenant, Channel, Sender, ControlID, Patient, Status string
	// Before pages backwards: messages received before this archive
	// sequence (0: from the newest).
	Before int64
	Limit  int
}

// MessageLog reads the message archive.
type MessageLog interface {
	// Get returns one message. ErrNotFound.
	Get(ctx context.Context, id string) (Message, error)
	// FindKey returns the message with a de-duplication key. ErrNotFound.
	FindKey(ctx context.Context, tenant, channel, key string) (Message, error)
	// List returns messages, newest first, and the cursor of the next page
	// (0 on the last).
	List(ctx context.Context, f MessageFilter) ([]Message, int64, error)
}

// HistoryParams pages through a resource's history.
type HistoryParams struct {
	Count  int
	Cursor string
}

// Query is a typed search on one resource type.
type Query struct {
	Tenant string // empty: every tenant
	Type   string
	Params []Param
	// Count is the page size (default 50, at most 1000).
	Count int
	// Cursor continues a previous search (Page.Next). Keyset paging: pages stay
	// stable when rows are inserted meanwhile.
	Cursor string
	// Total asks for the number of matches across pages.
	Total bool
}

// ParamKind is the type of a search parameter, as in FHIR.
type ParamKind string

const (
	KindToken     ParamKind = "token"
	KindReference ParamKind = "reference"
	KindDate      ParamKind = "date"
	KindString    ParamKind = "string"
	KindURI       ParamKind = "uri"
)

// Param is one search criterion: the resource matches when any of Values
// matches (FHIR's comma = OR); several Params are ANDed.
type Param struct {
	Name   string
	Kind   ParamKind
	Values []Value
}

// Value is one search value. Which fields are used depends on the kind:
// token: System (nil = any system; pointer to "" = no system) and Code;
// reference: Ref ("Type/id"); string: Text (case- and accent-insensitive
// prefix; Exact for :exact); uri: Text exact; date: Prefix and the interval
// [Lo, Hi) that the given precision covers.
type Value struct {
	System *string
	Code   string
	Ref    string
	Text   string
	Exact  bool
	Prefix string // eq, ne, lt, gt, le, ge, sa, eb, ap
	Lo, Hi time.Time
}

// Page is one page of results.
type Page struct {
	Resources []Resource
	// Next continues the search; empty on the last page.
	Next string
	// Total is set when asked for (-1 otherwise).
	Total int
}

// Outbox is the relay's view of the outbox.
type Outbox interface {
	// Pending returns unsent rows in commit order, at most limit.
	Pending(ctx context.Context, limit int) ([]OutboxRow, error)
	// MarkSent marks rows sent at the given time.
	MarkSent(ctx context.Context, seqs []int64, at time.Time) error
	// Resend marks rows sent at or after since as unsent again, so the relay
	// publishes them again (after a broker loss). Returns how many.
	Resend(ctx context.Context, since time.Time) (int, error)
	// Purge deletes rows sent before the given time. Returns how many.
	Purge(ctx context.Context, sentBefore time.Time) (int, error)
	// Backlog counts unsent rows.
	Backlog(ctx context.Context) (int, error)
	// PurgeInbox deletes inbox marks recorded before the given time: by then
	// the bus can no longer redeliver those messages. Returns how many.
	PurgeInbox(ctx context.Context, before time.Time) (int, error)
}

// Timers is the timer runner's view of durable timers.
type Timers interface {
	// Claim leases up to limit pending timers due at or before now to owner
	// until now+lease. A timer whose lease has run out can be claimed again.
	// Two concurrent claimers never get the same timer while a lease holds.
	Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Timer, error)
	// Pending returns the pending timer with key. ErrNotFound.
	Pending(ctx context.Context, key string) (Timer, error)
	// NextDue returns the earliest due time of a pending timer; ok is false if none.
	NextDue(ctx context.Context) (due time.Time, ok bool, err error)
}

// AuditLog reads the audit trail.
type AuditLog interface {
	// List returns records after seq afterSeq, in order, at most limit.
	List(ctx context.Context, afterSeq int64, limit int) ([]AuditRecord, error)
	// Find returns one tenant's records matching f, newest first.
	Find(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// Heads returns the last record of each tenant's chain, by tenant.
	Heads(ctx context.Context) ([]AuditRecord, error)
	// Hash is the hash the store gives record r (keyed or not, see
	// AuditKey), for verifying the chain without handing out the key.
	Hash(r AuditRecord) string
}

// AuditFilter selects audit records of one tenant; empty fields match all.
type AuditFilter struct {
	Tenant  string
	Patient string
	// Seq selects one record.
	Seq int64
	// Before pages backwards: records with a smaller seq (0: from the newest).
	Before int64
	// Limit is at most 1000 (default 1000).
	Limit int
}

// Leases hands out named, time-bound, exclusive roles (the outbox relay, the
// timer runner of a tenant) to one replica at a time.
type Leases interface {
	// Acquire takes or renews the lease name for owner until now+ttl. It
	// returns false when another owner holds an unexpired lease.
	Acquire(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	// Release gives the lease up if owner holds it.
	Release(ctx context.Context, name, owner string) error
}

type urgentKey struct{}

// Urgent marks ctx so that the transactions run with it go before others
// waiting to commit: a hospital waiting for an acknowledgement goes before
// background work such as applying messages already acknowledged.
func Urgent(ctx context.Context) context.Context { return context.WithValue(ctx, urgentKey{}, true) }

// IsUrgent tells whether ctx was marked with Urgent.
func IsUrgent(ctx context.Context) bool { v, _ := ctx.Value(urgentKey{}).(bool); return v }

// Actor is who a service's writes are done for when no person's request
// audits them itself: the service acting and what made it act. A write
// transaction run with an Actor in its context adds an audit record for
// every create, update and delete of patient data, in the same transaction
// (docs/architecture.md, "Audit chain": every write of patient data leaves an AuditEvent).
type Actor struct {
	// Agent is "System/<service>".
	Agent string
	// Cause is the originating message or person: "event <id>",
	// "message <archive id>", "timer <key>".
	Cause string
}

type actorKey struct{}

// WithActor marks ctx so that the store audits the writes done with it.
// The FHIR API and other handlers that audit a person's request themselves
// do not set it, so nothing is audited twice.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the Actor set by WithActor.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok && a.Agent != ""
}

// ServiceAgent is the audit agent of a service, from a name it prefixes
// ("pathway-encounter" → "System/pathway"): durable consumers and timer
// kinds are named after their service.
func ServiceAgent(name string) string {
	if i := strings.IndexByte(name, '-'); i > 0 {
		name = name[:i]
	}
	return "System/" + name
}

// ErrKeyInUse: a write transaction ran with an idempotency key (see
// WithIdempotencyKey) that another request of the same scope has already
// claimed. The transaction must not commit; the request's answer is the
// first request's (or 409 while that one is still in progress).
var ErrKeyInUse = errors.New("idempotency key already used")

// IdempotencyKey is a client's Idempotency-Key as a request's writes carry
// it: the first transaction of the request that writes data records the key
// in the same database transaction, so that the key is stored if and only if
// the write is. The HTTP edge then stores the answer with it.
type IdempotencyKey struct {
	// Scope is who the key belongs to (the tenant and the authenticated
	// actor): two callers choosing the same key never meet.
	Scope string
	Key   string
	// Hash identifies the request (method, target and body), to tell a
	// retry from another request reusing the key.
	Hash string

	mu      sync.Mutex
	claimed bool
	lost    bool
}

// Claimed tells whether a transaction of the request committed the key.
func (k *IdempotencyKey) Claimed() bool { k.mu.Lock(); defer k.mu.Unlock(); return k.claimed }

// Lost tells whether a transaction of the request found the key already
// claimed by another request (and so wrote nothing).
func (k *IdempotencyKey) Lost() bool { k.mu.Lock(); defer k.mu.Unlock(); return k.lost }

// SetClaimed and SetLost are for backends: called once a transaction that
// claimed the key committed, or found it taken.
func (k *IdempotencyKey) SetClaimed() { k.mu.Lock(); k.claimed = true; k.mu.Unlock() }

// SetLost: see SetClaimed.
func (k *IdempotencyKey) SetLost() { k.mu.Lock(); k.lost = true; k.mu.Unlock() }

type idemKey struct{}

// WithIdempotencyKey marks ctx so that the first write transaction run with
// it that writes data (a create, update or delete, an archived message, a
// service's own table) records k, or fails with ErrKeyInUse when k is taken.
func WithIdempotencyKey(ctx context.Context, k *IdempotencyKey) context.Context {
	return context.WithValue(ctx, idemKey{}, k)
}

// IdempotencyKeyFrom returns the key set by WithIdempotencyKey.
func IdempotencyKeyFrom(ctx context.Context) (*IdempotencyKey, bool) {
	k, ok := ctx.Value(idemKey{}).(*IdempotencyKey)
	return k, ok && k != nil
}

// IdempotentRequest is a stored idempotency key and, once given, its answer.
type IdempotentRequest struct {
	Scope, Key, Hash string
	Created          time.Time
	// Status is the answer's HTTP status; 0 while the request that claimed
	// the key has not stored its answer yet.
	Status int
	Header map[string][]string
	Body   []byte
}

// Idempotency keeps the idempotency keys of requests and their answers.
type Idempotency interface {
	// Get returns the stored key. ErrNotFound.
	Get(ctx context.Context, scope, key string) (IdempotentRequest, error)
	// Answer stores r's answer: on the key its request claimed (same scope,
	// key and hash, no answer yet), or as a new key when no write claimed it.
	// When the key already holds an answer or another request's hash, it
	// stores nothing and returns that key and false.
	Answer(ctx context.Context, r IdempotentRequest) (IdempotentRequest, bool, error)
	// Purge deletes keys created before the given time. Returns how many.
	Purge(ctx context.Context, before time.Time) (int, error)
}

// IdempotencyRetention is how long idempotency keys are kept: a phone
// offline for days still finds its key when it sends again.
const IdempotencyRetention = 7 * 24 * time.Hour

// NewID returns a new resource id: a version 7 UUID, whose leading bits are
// the time of its making, so that the resources written one after the other
// sit side by side in every index keyed by id instead of at random places
// (a write then touches a few index pages, not one per entry; see
// docs/architecture.md, "Write path"). Ids are opaque to clients all the same.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }
