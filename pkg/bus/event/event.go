// Package event is the one contract of Passerelle's change events: "these
// resources changed", as every service publishes it on
// fhir.<tenant>.<Type>.<op> and every consumer reads it. Change is the Go
// form; Encode gives the outbox row, Decode reads a delivered message back,
// and Inbox hands a consumer's handler the decoded Change.
//
// On the wire (docs/architecture.md, "Events") a change of one resource is
// that resource's JSON; a change of several is a FHIR Bundle of type
// history, the lead resource first, each entry with a relative fullUrl
// ("<Type>/<id>") and its version in response.etag. The subject, the
// Nats-Msg-Id and the headers are the lead's. Decode also reads a history
// Bundle of one entry and an absolute fullUrl, as older producers wrote
// them, so that a redelivered or replayed old message is still understood.
package event

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Obj is a resource's JSON decoded: what the services edit.
type Obj = map[string]any

// Resource is one resource version a change carries.
type Resource struct {
	Type    string
	ID      string
	Version int64
	// Body is the resource's JSON as the store wrote it: what Encode
	// writes (Obj encoded when Body is empty).
	Body json.RawMessage
	// Obj is the resource decoded: what Decode gives (each call afresh, so
	// a handler may edit it), leaving Body empty — a consumer reads the
	// JSON once, not twice.
	Obj Obj
}

// Change is "these resources changed", with the headers that travel with it.
type Change struct {
	// Tenant is the CPTS the resources belong to (header Passerelle-Tenant).
	Tenant string
	// Op is bus.OpCreated, bus.OpUpdated or bus.OpDeleted: the subject's
	// last token, the lead's operation.
	Op string
	// Trace is the W3C traceparent to carry on (header traceparent).
	Trace string
	// IntakeEvent is the kind of hospital notification (pkg/intake Kind…)
	// an Encounter change of intake records (header Passerelle-Intake-Event);
	// empty on every other change.
	IntakeEvent string
	// MsgID identifies the message (Nats-Msg-Id). Decode sets it; Encode
	// derives it when empty (see Encode).
	MsgID string
	// Delivery counts the deliveries of the message, 1 for the first (0
	// when unknown). Decode sets it.
	Delivery uint64
	// Resources are the resources written, the lead first.
	Resources []Resource
}

// New is the change of rs, led by rs[0], for tenant; trace may be empty.
func New(tenant, op, trace string, rs ...store.Resource) Change {
	c := Change{Tenant: tenant, Op: op, Trace: trace, Resources: make([]Resource, len(rs))}
	for i, r := range rs {
		c.Resources[i] = Resource{Type: r.Type, ID: r.ID, Version: r.Version, Body: r.Body}
	}
	return c
}

// Of returns the decoded resources of type typ, in order.
func (c Change) Of(typ string) []Obj {
	var out []Obj
	for _, r := range c.Resources {
		if r.Type == typ && r.Obj != nil {
			out = append(out, r.Obj)
		}
	}
	return out
}

// TenantOr is the change's tenant, or def when the message named none.
func (c Change) TenantOr(def string) string {
	if c.Tenant != "" {
		return c.Tenant
	}
	return def
}

// Errors of Encode and Decode.
var (
	// ErrEmpty: a change without resources.
	ErrEmpty = errors.New("change without resources")
	// ErrBundle: a change never carries a Bundle resource, whose entries
	// would read as the change's own.
	ErrBundle = errors.New("a change does not carry a Bundle")
)

// Encode is the outbox row announcing c. The subject, ordering key and
// headers are the lead's (c.Resources[0]); the order key header
// (bus.HeaderOrderKey) is the patient the lead is about, else the lead
// itself (see OrderKey). The message id, unless c.MsgID
// sets one, is the lead's version "<Type>/<id>/_history/<version>"; for a
// batch of several resources of one type (teams' tasks, notifications), it is
// "<Type>-batch/<digest of every id and version>", as no one of them stands
// for the others.
func (c Change) Encode() (store.Event, error) {
	if len(c.Resources) == 0 {
		return store.Event{}, ErrEmpty
	}
	for _, r := range c.Resources {
		if r.Type == "Bundle" {
			return store.Event{}, ErrBundle
		}
	}
	lead := c.Resources[0]
	h := map[string]string{bus.HeaderResourceType: lead.Type, bus.HeaderVersion: strconv.FormatInt(lead.Version, 10), bus.HeaderTenant: c.Tenant}
	if c.Trace != "" {
		h[bus.HeaderTraceparent] = c.Trace
	}
	if c.IntakeEvent != "" {
		h[bus.HeaderIntakeEvent] = c.IntakeEvent
	}
	h[bus.HeaderOrderKey] = lead.orderKey()
	ev := store.Event{Subject: bus.ResourceSubject(c.Tenant, lead.Type, c.Op), MsgID: c.MsgID, Key: lead.Type + "/" + lead.ID, Headers: h}
	if ev.MsgID == "" {
		ev.MsgID = c.msgID()
	}
	if len(c.Resources) == 1 {
		body, err := lead.body()
		if err != nil {
			return store.Event{}, err
		}
		ev.Data = body
		return ev, nil
	}
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"history","entry":[`)
	for i, r := range c.Resources {
		body, err := r.body()
		if err != nil {
			return store.Event{}, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		url := quote(r.Type + "/" + r.ID)
		fmt.Fprintf(&b, `{"fullUrl":%s,"resource":`, url)
		b.Write(body)
		fmt.Fprintf(&b, `,"request":{"method":"PUT","url":%s},"response":{"status":"200","etag":%s}}`, url, quote(etag(r.Version)))
	}
	b.WriteString(`]}`)
	ev.Data = b.Bytes()
	return ev, nil
}

// OrderKey is what a change of r must stay in order with on a consumer
// with lanes (bus.ConsumerConfig.Lanes): the patient it is about,
// "Patient/<id>" — itself for a Patient, else the Patient its subject,
// patient (EpisodeOfCare), for (Task) or beneficiary (Coverage) names, the
// members the store's patient compartment reads — and otherwise the
// resource, "<Type>/<id>". So every change of one patient is handled in
// order, whichever resource it leads with.
func OrderKey(r Resource) string { return r.orderKey() }

func (r Resource) orderKey() string {
	if r.Type == "Patient" {
		return "Patient/" + r.ID
	}
	var refs [4]string
	if r.Obj != nil {
		for i, k := range patientMembers {
			m, _ := r.Obj[k].(map[string]any)
			refs[i], _ = m["reference"].(string)
		}
	} else {
		// Only the four references are kept; the rest is skipped. A
		// member of another shape is left empty.
		var b struct {
			Subject, Patient, For, Beneficiary struct{ Reference string }
		}
		_ = json.Unmarshal(r.Body, &b)
		refs = [4]string{b.Subject.Reference, b.Patient.Reference, b.For.Reference, b.Beneficiary.Reference}
	}
	for _, ref := range refs {
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && id != "" && !strings.Contains(id, "/") {
			return ref
		}
	}
	return r.Type + "/" + r.ID
}

// patientMembers are the members that name the patient a resource is about,
// in the order OrderKey reads them.
var patientMembers = [4]string{"subject", "patient", "for", "beneficiary"}

// body is the resource's JSON: Body, or Obj encoded.
func (r Resource) body() (json.RawMessage, error) {
	if len(r.Body) > 0 {
		return r.Body, nil
	}
	if r.Obj == nil {
		return nil, fmt.Errorf("%s/%s: no body", r.Type, r.ID)
	}
	b, err := json.Marshal(r.Obj)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", r.Type, r.ID, err)
	}
	return b, nil
}

func (c Change) msgID() string {
	lead := c.Resources[0]
	batch := len(c.Resources) > 1
	for _, r := range c.Resources[1:] {
		batch = batch && r.Type == lead.Type
	}
	if !batch {
		return fmt.Sprintf("%s/%s/_history/%d", lead.Type, lead.ID, lead.Version)
	}
	ids := make([]string, len(c.Resources))
	for i, r := range c.Resources {
		ids[i] = fmt.Sprintf("%s/%d", r.ID, r.Version)
	}
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return lead.Type + "-batch/" + hex.EncodeToString(sum[:16])
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

func quote(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// Emitter is the part of a store transaction Emit needs.
type Emitter interface {
	Emit(ctx context.Context, e store.Event) error
}

// Emit encodes c and adds it to the transaction's outbox.
func Emit(ctx context.Context, tx Emitter, c Change) error {
	ev, err := c.Encode()
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return tx.Emit(ctx, ev)
}

// Decode reads a delivered change event. Its error means the message can
// never be read: a consumer dead-letters it (Inbox wraps it in bus.Permanent).
func Decode(m bus.Msg) (Change, error) {
	c := Change{Tenant: m.Header[bus.HeaderTenant], Trace: m.Header[bus.HeaderTraceparent],
		IntakeEvent: m.Header[bus.HeaderIntakeEvent], MsgID: m.Header[bus.HeaderMsgID], Delivery: m.NumDelivered}
	// fhir.<tenant>.<Type>.<op>: the tenant token stands in for a missing header.
	if p := strings.Split(m.Subject, "."); len(p) == 4 && p[0] == "fhir" {
		c.Op = p[3]
		if c.Tenant == "" {
			c.Tenant = p[1]
		}
	}
	// One decoding of the whole message: the resources are its parts.
	var root Obj
	if err := json.Unmarshal(m.Data, &root); err != nil {
		return Change{}, fmt.Errorf("change event on %s: %w", m.Subject, err)
	}
	if root["resourceType"] != "Bundle" {
		v, _ := strconv.ParseInt(m.Header[bus.HeaderVersion], 10, 64)
		r, err := resource(root, v)
		if err != nil {
			return Change{}, fmt.Errorf("change event on %s: %w", m.Subject, err)
		}
		c.Resources = []Resource{r}
		return c, nil
	}
	entries, ok := root["entry"].([]any)
	if !ok && root["entry"] != nil {
		return Change{}, fmt.Errorf("change event on %s: Bundle.entry is not a list", m.Subject)
	}
	for i, e := range entries {
		eo, _ := e.(map[string]any)
		ro, ok := eo["resource"].(map[string]any)
		if !ok {
			return Change{}, fmt.Errorf("change event on %s: Bundle.entry[%d] has no resource", m.Subject, i)
		}
		resp, _ := eo["response"].(map[string]any)
		etag, _ := resp["etag"].(string)
		v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(etag, `W/"`), `"`), 10, 64)
		r, err := resource(ro, v)
		if err != nil {
			return Change{}, fmt.Errorf("change event on %s: Bundle.entry[%d]: %w", m.Subject, i, err)
		}
		c.Resources = append(c.Resources, r)
	}
	if len(c.Resources) == 0 {
		return Change{}, fmt.Errorf("change event on %s: %w", m.Subject, ErrEmpty)
	}
	return c, nil
}

// resource reads one decoded resource; version 0 (unknown) falls back on
// its meta.versionId, which the store stamps on every version.
func resource(o Obj, version int64) (Resource, error) {
	typ, _ := o["resourceType"].(string)
	switch typ {
	case "":
		return Resource{}, errors.New("not a FHIR resource (no resourceType)")
	case "Bundle":
		return Resource{}, ErrBundle
	}
	id, _ := o["id"].(string)
	if version <= 0 {
		meta, _ := o["meta"].(map[string]any)
		s, _ := meta["versionId"].(string)
		version, _ = strconv.ParseInt(s, 10, 64)
	}
	if version < 0 {
		version = 0
	}
	return Resource{Type: typ, ID: id, Version: version, Obj: o}, nil
}

// Handler handles one change inside the transaction of its inbox mark.
type Handler func(ctx context.Context, tx store.Tx, c Change) error

// Inbox is bus.Inbox for a change handler: the durable consumer's handler
// that runs h at most once per message. The message is decoded before the
// transaction, outside the store's writer; a transaction run again decodes
// it afresh (it must not see the edits of its first run), and a message
// that is not a change event is dead-lettered at once.
func Inbox(s store.Store, durable string, h Handler) bus.Handler {
	return InboxPrepared(s, durable, func(_ context.Context, c Change) (Change, error) { return c, nil }, h)
}

// InboxPrepared is Inbox for a handler in two halves: prepare does the work
// that needs only the change (decoding resources into Go types, building
// what will be written) before the transaction, outside the store's writer;
// apply runs inside it with prepare's result. A transaction run again
// prepares again, so apply may consume what it is given.
func InboxPrepared[P any](s store.Store, durable string, prepare func(ctx context.Context, c Change) (P, error),
	apply func(ctx context.Context, tx store.Tx, p P) error) bus.Handler {
	return func(ctx context.Context, m bus.Msg) error {
		prep := func() (P, error) {
			c, err := Decode(m)
			if err != nil {
				var zero P
				return zero, bus.Permanent(err)
			}
			return prepare(ctx, c)
		}
		first, ferr := prep()
		fresh := true
		return bus.Inbox(s, durable, func(ctx context.Context, tx store.Tx, m bus.Msg) error {
			p, err := first, ferr
			if !fresh {
				p, err = prep()
			}
			fresh = false
			if err != nil {
				return err
			}
			return apply(ctx, tx, p)
		})(ctx, m)
	}
}
