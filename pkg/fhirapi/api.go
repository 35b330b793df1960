// Package fhirapi serves Passerelle's FHIR R4 REST API: the
// CapabilityStatement, read, vread, history and search for stored types,
// create and update where the access policy allows, every error an
// OperationOutcome with the right status, every access to patient data in
// the audit trail (a write's record in the write's own transaction), and
// that trail served to the coordinator as AuditEvents shaped like IHE BALP
// (GET /fhir/AuditEvent?patient=).
//
// Access is package access's: searches are narrowed by Policy.Search (so
// results and totals show only what the caller may see), reads checked by
// Policy.Read, writes by Policy.Write.
package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/search"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// ContentType is the media type of every FHIR answer.
const ContentType = "application/fhir+json; charset=utf-8"

// maxBody bounds a request body (a discharge message with its lettre de
// liaison is well below).
const maxBody = 8 << 20

// API is the FHIR REST API.
type API struct {
	Store  store.Store
	Search *search.Registry
	Policy access.Policy
	Logger *slog.Logger
	// BaseURL is the public URL of the API, ending in /fhir.
	BaseURL string
	// Software and Version name the server in the CapabilityStatement.
	Version string
	// OAuth endpoints, advertised in the CapabilityStatement.
	TokenURL, AuthorizeURL string
	// Operations lists extra operations registered by services, for the
	// CapabilityStatement: name → definition URL.
	Operations map[string]string
	// Published tells whether changes of a type are published as events.
	Published func(typ string) bool
	// Now gives the time of audit records.
	Now func() time.Time
}

// Register adds the API's routes to mux; authn wraps every route but
// metadata.
func (a *API) Register(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	mux.HandleFunc("GET /fhir/metadata", a.metadata)
	// The audit trail is served from the store's hash-chained log, not as
	// stored resources: these routes are more specific than the generic ones.
	mux.Handle("GET /fhir/AuditEvent", authn(http.HandlerFunc(a.searchAudit)))
	mux.Handle("POST /fhir/AuditEvent/_search", authn(http.HandlerFunc(a.searchAudit)))
	mux.Handle("GET /fhir/AuditEvent/{id}", authn(http.HandlerFunc(a.readAudit)))
	mux.Handle("GET /fhir/{type}", authn(a.typed(a.search)))
	mux.Handle("POST /fhir/{type}/_search", authn(a.typed(a.search)))
	mux.Handle("GET /fhir/{type}/{id}", authn(a.typed(a.read)))
	mux.Handle("GET /fhir/{type}/{id}/_history", authn(a.typed(a.history)))
	mux.Handle("GET /fhir/{type}/{id}/_history/{vid}", authn(a.typed(a.vread)))
	mux.Handle("POST /fhir/{type}", authn(a.typed(a.create)))
	mux.Handle("PUT /fhir/{type}/{id}", authn(a.typed(a.update)))
	mux.Handle("/fhir/", authn(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, a.Logger, fhir.Errorf(fhir.NotFound, "not-supported",
			"Interaction non prise en charge : "+r.Method+" "+r.URL.Path, "Interaction not supported: "+r.Method+" "+r.URL.Path))
	})))
}

// WriteError answers err as an OperationOutcome. Internal errors are logged
// in full and shown generically.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	fe := fhir.FromError(err)
	if ServerFault(fe.Kind) && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "error", err)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(Status(fe.Kind))
	_, _ = w.Write(fe.OperationOutcome())
}

// typed answers 404 for a resource type the server does not know, before
// the handler runs.
func (a *API) typed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.knownType(r.PathValue("type")); err != nil {
			WriteError(w, r, a.Logger, err)
			return
		}
		h(w, r)
	})
}

func (a *API) knownType(typ string) error {
	if len(a.Search.Params(typ)) == 0 {
		return fhir.Errorf(fhir.NotFound, "not-supported",
			"Type de ressource non pris en charge : "+typ, "Resource type not supported: "+typ)
	}
	return nil
}

func actor(r *http.Request) directory.Actor {
	a, _ := access.ActorFrom(r.Context())
	return a
}

func writeResource(w http.ResponseWriter, status int, res store.Resource) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("ETag", fmt.Sprintf(`W/"%d"`, res.Version))
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
}

func (a *API) read(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	res, err := a.Store.Read(r.Context(), typ, id)
	if errors.Is(err, store.ErrGone) {
		res.Type, res.ID = typ, id
	}
	reach := access.NoReach
	if err == nil || errors.Is(err, store.ErrGone) {
		var perr error
		if reach, perr = a.Policy.ReadReach(r.Context(), a.Store, actor(r), res); perr != nil {
			err = perr
		}
	}
	a.audit(r, "R", typ+"/"+id, res, err, reach)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	writeResource(w, http.StatusOK, res)
}

func (a *API) vread(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	vid, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil || vid < 1 {
		WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "value", "Numéro de version invalide", "Invalid version id", "_history"))
		return
	}
	// An old version is judged by who the caller is to the resource now
	// (its current version), as its history is: a task reassigned away
	// from her, or a record moved to another patient, shows no old version
	// to a caller who no longer reaches it.
	cur, err := a.Store.Read(r.Context(), typ, id)
	if errors.Is(err, store.ErrGone) {
		cur.Type, cur.ID, err = typ, id, nil
	}
	var res store.Resource
	reach := access.NoReach
	if err == nil {
		reach, err = a.Policy.ReadReach(r.Context(), a.Store, actor(r), cur)
	}
	res = cur
	if err == nil {
		var old store.Resource
		if old, err = a.Store.VRead(r.Context(), typ, id, vid); err == nil {
			res = old
		}
	}
	a.audit(r, "R", fmt.Sprintf("%s/%s/_history/%d", typ, id, vid), res, err, reach)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	if res.Deleted {
		WriteError(w, r, a.Logger, store.ErrGone)
		return
	}
	writeResource(w, http.StatusOK, res)
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	q := r.URL.Query()
	count, err := countParam(q)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	cur, err := a.Store.Read(r.Context(), typ, id)
	if err != nil && !errors.Is(err, store.ErrGone) {
		WriteError(w, r, a.Logger, err)
		return
	}
	cur.Type, cur.ID = typ, id
	reach, err := a.Policy.ReadReach(r.Context(), a.Store, actor(r), cur)
	if err != nil {
		a.audit(r, "R", typ+"/"+id+"/_history", cur, err, reach)
		WriteError(w, r, a.Logger, err)
		return
	}
	page, err := a.Store.History(r.Context(), typ, id, store.HistoryParams{Count: count, Cursor: q.Get("_cursor")})
	a.audit(r, "R", typ+"/"+id+"/_history", cur, err, reach)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	a.writeBundle(w, r, "history", page)
}

func countParam(q url.Values) (int, error) {
	if c := q.Get("_count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 1000 {
			return 0, fhir.Errorf(fhir.Invalid, "value", "_count doit être un entier de 1 à 1000", "_count must be an integer from 1 to 1000", "_count")
		}
		return n, nil
	}
	return 0, nil
}

func (a *API) search(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	values := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "structure", "Formulaire de recherche illisible", "Unreadable search form"))
			return
		}
		values = r.Form
	}
	parsed, err := a.Search.ParseQuery(typ, values)
	if err != nil {
		var se *search.Error
		if errors.As(err, &se) {
			expr := []string{}
			if se.Param != "" {
				expr = append(expr, se.Param)
			}
			err = &fhir.Error{Kind: fhir.Invalid, Err: err, Issues: []fhir.Issue{{Severity: "error", Code: "invalid",
				FR: "Paramètre de recherche refusé : " + se.Msg, EN: "Search parameter refused: " + se.Msg, Expression: expr}}}
		}
		WriteError(w, r, a.Logger, err)
		return
	}
	q := parsed.Query("")
	named := namedPatients(typ, q)
	grace, err := a.Policy.SearchReach(r.Context(), a.Store, actor(r), &q)
	if err != nil {
		a.auditSearch(r, typ, named, nil, err, nil)
		WriteError(w, r, a.Logger, err)
		return
	}
	page, err := a.Store.Search(r.Context(), q)
	a.auditSearch(r, typ, named, page.Resources, err, grace)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	a.writeBundle(w, r, "searchset", page)
}

func (a *API) writeBundle(w http.ResponseWriter, r *http.Request, kind string, page store.Page) {
	type link struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search,omitempty"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Total        *int    `json:"total,omitempty"`
		Link         []link  `json:"link"`
		Entry        []entry `json:"entry,omitempty"`
	}{ResourceType: "Bundle", Type: kind}
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	self := a.BaseURL + strings.TrimPrefix(r.URL.Path, "/fhir")
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.Form
		self = strings.TrimSuffix(self, "/_search")
	}
	b.Link = append(b.Link, link{"self", withQuery(self, q)})
	if page.Next != "" {
		q.Set("_cursor", page.Next)
		b.Link = append(b.Link, link{"next", withQuery(self, q)})
	}
	for _, res := range page.Resources {
		e := entry{FullURL: a.BaseURL + "/" + res.Type + "/" + res.ID, Resource: res.Body}
		if kind == "searchset" {
			e.Search = &struct {
				Mode string `json:"mode"`
			}{"match"}
		}
		if kind == "history" {
			e.FullURL = fmt.Sprintf("%s/%s/%s/_history/%d", a.BaseURL, res.Type, res.ID, res.Version)
		}
		b.Entry = append(b.Entry, e)
	}
	w.Header().Set("Content-Type", ContentType)
	_ = json.NewEncoder(w).Encode(b)
}

func withQuery(u string, q url.Values) string {
	if len(q) == 0 {
		return u
	}
	return u + "?" + q.Encode()
}

// readBody decodes a resource body, checking it is a JSON object of the
// expected type.
func readBody(w http.ResponseWriter, r *http.Request, typ string) (json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.Contains(ct, "json") {
		return nil, fhir.Errorf(fhir.Unsupported, "not-supported",
			"Le corps doit être du JSON FHIR (application/fhir+json)", "The body must be FHIR JSON (application/fhir+json)")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var raw json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&raw); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "JSON mal formé : "+err.Error(), "Malformed JSON: "+err.Error())
	}
	if dec.More() {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Contenu après la ressource JSON", "Content after the JSON resource")
	}
	var head struct {
		ResourceType *string `json:"resourceType"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Une ressource FHIR est un objet JSON", "A FHIR resource is a JSON object")
	}
	if head.ResourceType == nil {
		return nil, fhir.Errorf(fhir.Invalid, "required", "resourceType manquant", "resourceType is missing", "resourceType")
	}
	if *head.ResourceType != typ {
		return nil, fhir.Errorf(fhir.Invalid, "invalid",
			fmt.Sprintf("resourceType %q ne correspond pas à l'URL (%s)", *head.ResourceType, typ),
			fmt.Sprintf("resourceType %q does not match the URL (%s)", *head.ResourceType, typ), "resourceType")
	}
	return raw, nil
}

// IfMatch reads If-Match: W/"<version>". It returns 0 when absent.
func IfMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, nil
	}
	v := strings.TrimPrefix(h, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.Invalid, "value", `If-Match doit être de la forme W/"<version>"`, `If-Match must look like W/"<version>"`, "If-Match")
	}
	return n, nil
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	act := actor(r)
	if err := a.Policy.Write(r.Context(), act, typ); err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	body, err := readBody(w, r, typ)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	// The server assigns the id of a created resource (FHIR create).
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	delete(m, "id")
	body, _ = json.Marshal(m)
	var res store.Resource
	err = a.Store.Tx(r.Context(), func(tx store.Tx) error {
		var err error
		if res, err = tx.Create(r.Context(), act.Tenant, body); err != nil {
			return err
		}
		return a.afterWrite(r.Context(), tx, act, "C", res, bus.OpCreated)
	})
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("%s/%s/%s/_history/%d", a.BaseURL, res.Type, res.ID, res.Version))
	writeResource(w, http.StatusCreated, res)
}

func (a *API) update(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	act := actor(r)
	if err := a.Policy.Write(r.Context(), act, typ); err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	ifMatch, err := IfMatch(r)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	body, err := readBody(w, r, typ)
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	var head struct {
		ID *string `json:"id"`
	}
	_ = json.Unmarshal(body, &head)
	if head.ID == nil || *head.ID != id {
		WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "invalid", "L'id de la ressource doit être celui de l'URL", "The resource id must match the URL", typ+".id"))
		return
	}
	var res store.Resource
	created := false
	err = a.Store.Tx(r.Context(), func(tx store.Tx) error {
		cur, err := tx.Read(r.Context(), typ, id)
		switch {
		case err == nil, errors.Is(err, store.ErrGone):
			if cur.Tenant != act.Tenant {
				return store.ErrNotFound
			}
		case errors.Is(err, store.ErrNotFound):
			created = true
		default:
			return err
		}
		if res, err = tx.Update(r.Context(), act.Tenant, body, ifMatch); err != nil {
			return err
		}
		op := bus.OpUpdated
		if created {
			op = bus.OpCreated
		}
		return a.afterWrite(r.Context(), tx, act, "U", res, op)
	})
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", fmt.Sprintf("%s/%s/%s/_history/%d", a.BaseURL, res.Type, res.ID, res.Version))
	}
	writeResource(w, status, res)
}

// afterWrite records the write in the audit trail and, for published types,
// in the outbox, inside the write's own transaction.
func (a *API) afterWrite(ctx context.Context, tx store.Tx, act directory.Actor, action string, res store.Resource, op string) error {
	if err := tx.Audit(ctx, store.AuditRecord{Tenant: act.Tenant, Time: a.now(), Agent: act.Reference(), Action: action,
		Entity: fmt.Sprintf("%s/%s/_history/%d", res.Type, res.ID, res.Version), Patient: PatientOf(res), Outcome: "0"}); err != nil {
		return err
	}
	if a.Published == nil || !a.Published(res.Type) {
		return nil
	}
	return event.Emit(ctx, tx, event.New(act.Tenant, op, TraceParent(ctx), res))
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// audit records a read of patient data, marked AuditGrace when the caller
// reads it only under the grace period after her care ended. Directory and
// definition reads are not patient data and are not recorded.
func (a *API) audit(r *http.Request, action, entity string, res store.Resource, err error, reach access.Reach) {
	typ := r.PathValue("type")
	if access.ClassOf(typ) != access.Clinical {
		return
	}
	// A refused look at a patient's record goes in that patient's trail
	// too, unless the resource is another tenant's.
	patient := ""
	if res.Tenant == actor(r).Tenant {
		patient = PatientOf(res)
	}
	rec := store.AuditRecord{Action: action, Entity: entity, Patient: patient, Outcome: outcome(err)}
	if err == nil && reach == access.GraceReach {
		rec.Detail = access.AuditGrace
	}
	a.appendAudit(r, rec)
}

// namedPatients are the patients a search names in its parameters
// (Observation?patient=Patient/x, Patient?_id=x), before the access policy
// narrows it.
func namedPatients(typ string, q store.Query) []string {
	var out []string
	for _, p := range q.Params {
		for _, v := range p.Values {
			switch {
			case p.Kind == store.KindReference && strings.HasPrefix(v.Ref, "Patient/"):
				out = append(out, v.Ref)
			case typ == "Patient" && p.Name == "_id" && v.Code != "":
				out = append(out, "Patient/"+v.Code)
			}
		}
	}
	return out
}

// auditSearch records a search: one record per patient whose data it
// returned or whom it named, so that a patient's trail shows every look at
// it, refused or narrowed to nothing included. A named patient of another
// tenant is left out of this tenant's trail.
// grace names the patients the caller reaches only under the grace
// period, whose records are marked AuditGrace.
func (a *API) auditSearch(r *http.Request, typ string, named []string, rs []store.Resource, err error, grace map[string]bool) {
	if access.ClassOf(typ) != access.Clinical {
		return
	}
	seen := map[string]bool{}
	for _, res := range rs {
		if p := PatientOf(res); p != "" {
			seen[p] = true
		}
	}
	tenant := actor(r).Tenant
	for _, p := range named {
		if seen[p] {
			continue
		}
		if pr, rerr := a.Store.Read(r.Context(), "Patient", strings.TrimPrefix(p, "Patient/")); (rerr == nil || errors.Is(rerr, store.ErrGone)) && pr.Tenant == tenant {
			seen[p] = true
		}
	}
	entity := typ + "?" + r.URL.RawQuery
	if r.Method == http.MethodPost {
		entity = typ + "?" + r.Form.Encode()
	}
	recs := []store.AuditRecord{{Action: "E", Entity: entity, Outcome: outcome(err)}}
	if len(seen) > 0 {
		ps := make([]string, 0, len(seen))
		for p := range seen {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		recs = recs[:0]
		for _, p := range ps {
			rec := store.AuditRecord{Action: "E", Entity: entity, Patient: p, Outcome: outcome(err)}
			if grace[p] {
				rec.Detail = access.AuditGrace
			}
			recs = append(recs, rec)
		}
	}
	a.appendAudit(r, recs...)
}

func outcome(err error) string {
	if err == nil {
		return "0"
	}
	var fe *fhir.Error
	if errors.As(err, &fe) && !ServerFault(fe.Kind) {
		return "4"
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) || errors.Is(err, store.ErrInvalid) {
		return "4"
	}
	return "8"
}

// appendAudit records the caller's records in one transaction.
func (a *API) appendAudit(r *http.Request, recs ...store.AuditRecord) {
	act := actor(r)
	now := a.now()
	err := a.Store.Tx(context.WithoutCancel(r.Context()), func(tx store.Tx) error {
		for _, rec := range recs {
			rec.Tenant, rec.Agent, rec.Time = act.Tenant, act.Reference(), now
			if err := tx.Audit(r.Context(), rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && a.Logger != nil {
		a.Logger.ErrorContext(r.Context(), "audit append failed", "entity_type", r.PathValue("type"), "error", err)
	}
}

// PatientOf returns the patient a resource is about (access.PatientOf).
func PatientOf(res store.Resource) string { return access.PatientOf(res) }

type traceKey struct{}

// WithTraceParent returns ctx carrying a W3C traceparent to copy onto events.
func WithTraceParent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceKey{}, tp)
}

// TraceParent returns the traceparent of ctx.
func TraceParent(ctx context.Context) string {
	s, _ := ctx.Value(traceKey{}).(string)
	return s
}
