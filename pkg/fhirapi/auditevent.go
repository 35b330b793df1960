package fhirapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Audit records of logins and logouts carry these entities; the web session
// writes them (package websession).
const (
	AuditLogin  = "login"
	AuditLogout = "logout"
	// AuditAPIAuth is a refused API authentication (401, or 403 for a
	// token that matches nobody); Detail says which request and why.
	AuditAPIAuth = "api-authentication"
)

// ExtAuditChain carries a record's place in its tenant's hash chain.
const ExtAuditChain = "https://passerelle.health/fhir/StructureDefinition/audit-chain"

// auditID is the AuditEvent id of the record with sequence seq.
func auditID(seq int64) string { return "audit-" + strconv.FormatInt(seq, 10) }

// searchAudit serves AuditEvent?patient= from the audit trail: the
// coordinator's, for their own tenant only, newest first.
func (a *API) searchAudit(w http.ResponseWriter, r *http.Request) {
	values := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "structure", "Formulaire de recherche illisible", "Unreadable search form"))
			return
		}
		values = r.Form
	}
	f := store.AuditFilter{Limit: 50}
	for name, vs := range values {
		if len(vs) != 1 {
			WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "invalid", name+" ne peut être donné qu'une fois", name+" may be given only once", name))
			return
		}
		v := vs[0]
		switch name {
		case "patient":
			ref := v
			if !strings.HasPrefix(ref, "Patient/") {
				ref = "Patient/" + ref
			}
			if !validID(strings.TrimPrefix(ref, "Patient/")) {
				WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "value", "patient doit être Patient/<id>", "patient must be Patient/<id>", "patient"))
				return
			}
			f.Patient = ref
		case "_count":
			n, err := countParam(values)
			if err != nil {
				WriteError(w, r, a.Logger, err)
				return
			}
			f.Limit = n
		case "_cursor":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "value", "_cursor invalide", "Invalid _cursor", "_cursor"))
				return
			}
			f.Before = n
		case "_format":
		default:
			WriteError(w, r, a.Logger, fhir.Errorf(fhir.Invalid, "not-supported",
				"Paramètre de recherche non pris en charge sur AuditEvent : "+name, "Search parameter not supported on AuditEvent: "+name, name))
			return
		}
	}
	act := actor(r)
	q := store.Query{Type: "AuditEvent"}
	if err := a.Policy.Search(r.Context(), a.Store, act, &q); err != nil {
		a.appendAudit(r, store.AuditRecord{Action: "E", Entity: "AuditEvent?" + values.Encode(), Outcome: outcome(err)})
		WriteError(w, r, a.Logger, err)
		return
	}
	f.Tenant = q.Tenant
	want := f.Limit
	f.Limit++
	recs, err := a.Store.AuditLog().Find(r.Context(), f)
	// Reading the trail is itself a look at the patient's data; the
	// patient is named when the tenant's trail holds them.
	seen := ""
	if len(recs) > 0 {
		seen = f.Patient
	}
	a.appendAudit(r, store.AuditRecord{Action: "E", Entity: "AuditEvent?" + values.Encode(), Patient: seen, Outcome: outcome(err)})
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	page := store.Page{Total: -1}
	if len(recs) > want {
		recs = recs[:want]
		page.Next = strconv.FormatInt(recs[len(recs)-1].Seq, 10)
	}
	for _, rec := range recs {
		page.Resources = append(page.Resources, store.Resource{Type: "AuditEvent", ID: auditID(rec.Seq), Body: AuditEventOf(rec, a.Version)})
	}
	a.writeBundle(w, r, "searchset", page)
}

// readAudit serves one AuditEvent of the caller's tenant.
func (a *API) readAudit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	act := actor(r)
	q := store.Query{Type: "AuditEvent"}
	if err := a.Policy.Search(r.Context(), a.Store, act, &q); err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	seq, err := strconv.ParseInt(strings.TrimPrefix(id, "audit-"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "audit-") || seq < 1 {
		WriteError(w, r, a.Logger, store.ErrNotFound)
		return
	}
	recs, err := a.Store.AuditLog().Find(r.Context(), store.AuditFilter{Tenant: q.Tenant, Seq: seq, Limit: 1})
	if err == nil && len(recs) == 0 {
		err = store.ErrNotFound
	}
	patient := ""
	if err == nil {
		patient = recs[0].Patient
	}
	a.appendAudit(r, store.AuditRecord{Action: "R", Entity: "AuditEvent/" + id, Patient: patient, Outcome: outcome(err)})
	if err != nil {
		WriteError(w, r, a.Logger, err)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write(AuditEventOf(recs[0], a.Version))
}

// validID checks the FHIR id syntax: [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

// AuditEventOf renders an audit record as a FHIR AuditEvent shaped like the
// IHE Basic Audit Log Patterns (BALP): a RESTful interaction (type rest,
// subtype read, vread, history-instance, search-type, create or update) or
// a user authentication (DICOM 110114, subtype login or logout); the agent
// who acted, Passerelle as the observer, the entity acted on and the patient.
func AuditEventOf(rec store.AuditRecord, version string) json.RawMessage {
	type concept struct {
		Coding []coding `json:"coding"`
	}
	type agent struct {
		Type      *concept   `json:"type,omitempty"`
		Who       *reference `json:"who,omitempty"`
		AltID     string     `json:"altId,omitempty"`
		Requestor bool       `json:"requestor"`
	}
	type entity struct {
		What  *reference `json:"what,omitempty"`
		Type  *coding    `json:"type,omitempty"`
		Role  *coding    `json:"role,omitempty"`
		Query string     `json:"query,omitempty"`
	}
	type ext struct {
		URL         string `json:"url"`
		ValueString string `json:"valueString,omitempty"`
	}
	ev := struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			Profile []string `json:"profile,omitempty"`
		} `json:"meta"`
		Extension []struct {
			URL       string `json:"url"`
			Extension []ext  `json:"extension"`
		} `json:"extension"`
		Type     coding   `json:"type"`
		Subtype  []coding `json:"subtype"`
		Action   string   `json:"action"`
		Recorded string   `json:"recorded"`
		Outcome  string   `json:"outcome"`
		OutDesc  string   `json:"outcomeDesc,omitempty"`
		Agent    []agent  `json:"agent"`
		Source   struct {
			Observer reference `json:"observer"`
			Type     []coding  `json:"type"`
		} `json:"source"`
		Entity []entity `json:"entity,omitempty"`
	}{ResourceType: "AuditEvent", ID: auditID(rec.Seq), Action: rec.Action,
		Recorded: rec.Time.UTC().Format(time.RFC3339Nano), Outcome: rec.Outcome}
	chain := []ext{{"sequence", strconv.FormatInt(rec.Seq, 10)}}
	// The first record of a tenant's chain follows nothing: an extension
	// with neither value nor sub-extensions is invalid FHIR (ext-1), so
	// previousHash is left out rather than sent empty.
	if rec.PrevHash != "" {
		chain = append(chain, ext{"previousHash", rec.PrevHash})
	}
	chain = append(chain, ext{"hash", rec.Hash})
	ev.Extension = append(ev.Extension, struct {
		URL       string `json:"url"`
		Extension []ext  `json:"extension"`
	}{ExtAuditChain, chain})
	ev.Source.Observer = reference{Display: "Passerelle " + version}
	ev.Source.Type = []coding{{"http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server"}}
	a := agent{Requestor: true}
	switch {
	case strings.HasPrefix(rec.Agent, "Device/"), strings.HasPrefix(rec.Agent, "System/"):
		a.Type = &concept{[]coding{{"http://dicom.nema.org/resources/ontology/DCM", "110150", "Application"}}}
	default:
		a.Type = &concept{[]coding{{"http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient"}}}
	}
	switch {
	case strings.HasPrefix(rec.Agent, "System/"):
		// A Passerelle service acting on its own (applying a hospital
		// message, reacting to an event) is no FHIR resource: it is named,
		// and what made it act (the message or person) is its altId.
		a.Who = &reference{Display: "Passerelle " + strings.TrimPrefix(rec.Agent, "System/")}
		a.AltID = rec.Detail
	case rec.Agent != "":
		a.Who = &reference{Reference: rec.Agent}
	}
	ev.Agent = []agent{a}
	if rec.Outcome != "0" && rec.Detail != "" {
		ev.OutDesc = rec.Detail
	}
	const balp = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
	rest := coding{"http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation"}
	interaction := func(code string) []coding { return []coding{{"http://hl7.org/fhir/restful-interaction", code, ""}} }
	what := &entity{Type: &coding{"http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"}}
	switch {
	case rec.Entity == AuditAPIAuth:
		ev.Type = coding{"http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication"}
		ev.Subtype = []coding{{"http://dicom.nema.org/resources/ontology/DCM", "110122", "Login"}}
		if rec.Agent == "" {
			ev.Agent[0].Who = &reference{Display: "inconnu / unknown"}
		}
		what.What = &reference{Display: rec.Detail}
	case rec.Entity == AuditLogin || rec.Entity == AuditLogout:
		ev.Type = coding{"http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication"}
		if rec.Entity == AuditLogin {
			ev.Subtype = []coding{{"http://dicom.nema.org/resources/ontology/DCM", "110122", "Login"}}
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.Login"}
		} else {
			ev.Subtype = []coding{{"http://dicom.nema.org/resources/ontology/DCM", "110123", "Logout"}}
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.Logout"}
		}
		if rec.Agent == "" && rec.Detail != "" {
			// A failed login names the account tried, not a member.
			ev.Agent[0].AltID = rec.Detail
		}
		what = nil
	case rec.Action == "E" && strings.Contains(rec.Entity, "?"):
		ev.Type, ev.Subtype = rest, interaction("search-type")
		ev.Meta.Profile = []string{balp + "IHE.BasicAudit.PatientQuery"}
		what.Query = base64.StdEncoding.EncodeToString([]byte(rec.Entity))
		if typ, _, ok := strings.Cut(rec.Entity, "?"); ok {
			what.What = &reference{Display: typ}
		}
	default:
		ev.Type = rest
		switch rec.Action {
		case "C":
			ev.Subtype = interaction("create")
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.PatientCreate"}
		case "U":
			ev.Subtype = interaction("update")
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.PatientUpdate"}
		case "D":
			ev.Subtype = interaction("delete")
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.PatientDelete"}
		default:
			code := "read"
			switch {
			case strings.HasSuffix(rec.Entity, "/_history"):
				code = "history-instance"
			case strings.Contains(rec.Entity, "/_history/"):
				code = "vread"
			}
			ev.Subtype = interaction(code)
			ev.Meta.Profile = []string{balp + "IHE.BasicAudit.PatientRead"}
		}
		if typ, _, _ := strings.Cut(rec.Entity, "/"); typ != "" && typ[0] >= 'A' && typ[0] <= 'Z' {
			what.What = &reference{Reference: rec.Entity}
		} else {
			// Not a FHIR resource (an archived hospital message): named.
			what.What = &reference{Display: rec.Entity}
		}
	}
	if what != nil {
		ev.Entity = append(ev.Entity, *what)
	}
	if rec.Patient != "" {
		ev.Entity = append(ev.Entity, entity{What: &reference{Reference: rec.Patient},
			Type: &coding{"http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"},
			Role: &coding{"http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"}})
	} else if what != nil {
		// BALP's patient profiles need a patient entity.
		ev.Meta.Profile = nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		// Every field is a plain string: this cannot fail.
		panic(fmt.Sprintf("audit event: %v", err))
	}
	return b
}
