package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Code systems and extensions a message uses.
const (
	SystemEvent       = "https://passerelle.health/fhir/CodeSystem/event"
	systemV20203      = "http://terminology.hl7.org/CodeSystem/v2-0203"
	systemFRv20203    = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
	systemICD10       = "http://hl7.org/fhir/sid/icd-10"
	extIdentityReliab = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
	extBirthPlace     = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
	extINSEE          = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
	systemDisposition = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
	systemActPriority = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
	insTestSystem     = "urn:oid:1.2.250.1.213.1.4.10"
	insDemoSystem     = "urn:oid:1.2.250.1.213.1.4.11"
	insNIRSystem      = "urn:oid:1.2.250.1.213.1.4.8"
	insNIASystem      = "urn:oid:1.2.250.1.213.1.4.9"
)

// eventKinds maps MessageHeader.eventCoding codes to intake kinds.
var eventKinds = map[string]string{
	"admit-notification":     intake.KindAdmit,
	"discharge-notification": intake.KindDischarge,
	"discharge-cancel":       intake.KindCancelDischarge,
	"death-notification":     intake.KindDeath,
}

// IsINS tells whether system is one of the INS systems.
func IsINS(system string) bool {
	switch system {
	case insNIRSystem, insNIASystem, insTestSystem, insDemoSystem:
		return true
	}
	return false
}

// IsTestINS tells whether system is the test or demo INS system, refused in
// production mode.
func IsTestINS(system string) bool { return system == insTestSystem || system == insDemoSystem }

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

func (c concept) code(system string) (coding, bool) {
	for _, cd := range c.Coding {
		if cd.System == system {
			return cd, true
		}
	}
	return coding{}, false
}

type identifier struct {
	Use    string  `json:"use"`
	Type   concept `json:"type"`
	System string  `json:"system"`
	Value  string  `json:"value"`
}

type reference struct {
	Reference  string      `json:"reference"`
	Identifier *identifier `json:"identifier"`
	Display    string      `json:"display"`
}

type extension struct {
	URL          string      `json:"url"`
	Extension    []extension `json:"extension"`
	ValueCoding  *coding     `json:"valueCoding"`
	ValueAddress *address    `json:"valueAddress"`
	ValueCode    string      `json:"valueCode"`
}

type address struct {
	Use        string      `json:"use"`
	Line       []string    `json:"line"`
	City       string      `json:"city"`
	PostalCode string      `json:"postalCode"`
	Country    string      `json:"country"`
	Extension  []extension `json:"extension"`
}

func (a address) insee() string {
	for _, e := range a.Extension {
		if e.URL == extINSEE && e.ValueCoding != nil {
			return e.ValueCoding.Code
		}
	}
	return ""
}

type message struct {
	raw    map[string]any
	Bundle struct {
		ResourceType string      `json:"resourceType"`
		Type         string      `json:"type"`
		Identifier   *identifier `json:"identifier"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	// res holds each entry's resource, decoded once.
	res []res
	// byRef finds an entry by fullUrl or Type/id.
	byRef map[string]int
	types []string
}

func decodeMessage(body []byte) (*message, error) {
	m := &message{byRef: map[string]int{}}
	if err := json.Unmarshal(body, &m.Bundle); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Le message n'est pas un JSON FHIR lisible : "+err.Error(),
			"The message is not readable FHIR JSON: "+err.Error())
	}
	if m.Bundle.ResourceType != "Bundle" || m.Bundle.Type != "message" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "Un message est un Bundle de type message", "A message is a Bundle of type message", "Bundle.type")
	}
	m.res = make([]res, len(m.Bundle.Entry))
	for i, e := range m.Bundle.Entry {
		head := &m.res[i]
		if err := json.Unmarshal(e.Resource, head); err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "structure", "Ressource illisible : "+err.Error(),
				"Unreadable resource: "+err.Error(), fmt.Sprintf("Bundle.entry[%d].resource", i))
		}
		m.types = append(m.types, head.ResourceType)
		if e.FullURL != "" {
			m.byRef[e.FullURL] = i
		}
		if head.ID != "" {
			m.byRef[head.ResourceType+"/"+head.ID] = i
		}
	}
	if len(m.Bundle.Entry) == 0 || m.types[0] != "MessageHeader" {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "La première entrée d'un message est son MessageHeader",
			"The first entry of a message is its MessageHeader", "Bundle.entry[0].resource")
	}
	return m, nil
}

// resolve returns the entry a reference points to and its index, or -1.
func (m *message) resolve(ref string) (*res, int) {
	i, ok := m.byRef[ref]
	if !ok {
		return &res{}, -1
	}
	return &m.res[i], i
}

type humanName struct {
	Use    string   `json:"use"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

// res holds the elements Passerelle reads of every resource type a message
// carries, so that each entry is decoded once. Only "name" differs in shape
// between types (HumanName[] or string) and is decoded on demand.
type res struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	// MessageHeader
	EventCoding coding      `json:"eventCoding"`
	Sender      *reference  `json:"sender"`
	Focus       []reference `json:"focus"`
	// Patient, Practitioner, Organization, Encounter
	Identifier          []identifier                     `json:"identifier"`
	Name                json.RawMessage                  `json:"name"`
	Extension           []extension                      `json:"extension"`
	Gender              string                           `json:"gender"`
	BirthDate           string                           `json:"birthDate"`
	DeceasedDateTime    string                           `json:"deceasedDateTime"`
	Address             []address                        `json:"address"`
	Telecom             []struct{ System, Value string } `json:"telecom"`
	GeneralPractitioner []reference                      `json:"generalPractitioner"`
	// Encounter
	Status   string    `json:"status"`
	Class    coding    `json:"class"`
	Priority concept   `json:"priority"`
	Subject  reference `json:"subject"`
	Period   struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"period"`
	Diagnosis []struct {
		Condition reference `json:"condition"`
		Rank      int       `json:"rank"`
	} `json:"diagnosis"`
	Hospitalization struct {
		DischargeDisposition concept `json:"dischargeDisposition"`
	} `json:"hospitalization"`
	ServiceProvider *reference `json:"serviceProvider"`
	// Condition
	Code concept `json:"code"`
	// CareTeam
	Participant []struct {
		Role   []concept `json:"role"`
		Member reference `json:"member"`
	} `json:"participant"`
}

func (r *res) humanNames() []humanName {
	var ns []humanName
	_ = json.Unmarshal(r.Name, &ns)
	return ns
}

func (r *res) orgName() string {
	var n string
	_ = json.Unmarshal(r.Name, &n)
	return n
}

// messageHeader, organization… name the resource an element of a message is.
type (
	messageHeader   = res
	organization    = res
	encounterRes    = res
	patientRes      = res
	practitionerRes = res
	careTeamRes     = res
)

func finessOf(ids []identifier) string {
	for _, id := range ids {
		if id.System == directory.SystemFINESS {
			return id.Value
		}
	}
	return ""
}

// facilityOf returns the FINESS a reference names, directly or through an
// Organization entry.
func (m *message) facilityOf(r *reference) string {
	if r == nil {
		return ""
	}
	if r.Identifier != nil && r.Identifier.System == directory.SystemFINESS {
		return r.Identifier.Value
	}
	if org, i := m.resolve(r.Reference); i >= 0 {
		return finessOf(org.Identifier)
	}
	return ""
}

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, clock.Paris); err == nil {
			return &t
		}
	}
	return nil
}

// header returns the MessageHeader, the event kind and the message key.
func (m *message) header() (*messageHeader, string, error) {
	h := &m.res[0]
	kind, ok := eventKinds[h.EventCoding.Code]
	if h.EventCoding.System != SystemEvent || !ok {
		return h, "", fhir.Errorf(fhir.Invalid, "code-invalid",
			fmt.Sprintf("Événement inconnu %s|%s", h.EventCoding.System, h.EventCoding.Code),
			fmt.Sprintf("Unknown event %s|%s", h.EventCoding.System, h.EventCoding.Code), "Bundle.entry[0].resource.eventCoding")
	}
	return h, kind, nil
}

// key identifies the message for de-duplication (docs/contract.md, "$process-message"): its
// Bundle.identifier, or lacking one its MessageHeader id and sender.
func (m *message) key(h *messageHeader, sender string) (string, error) {
	if id := m.Bundle.Identifier; id != nil && id.Value != "" {
		return "id|" + id.System + "|" + id.Value, nil
	}
	if h.ID == "" {
		return "", fhir.Errorf(fhir.Invalid, "required", "Le message n'a ni Bundle.identifier ni MessageHeader.id",
			"The message has neither Bundle.identifier nor MessageHeader.id", "Bundle.identifier")
	}
	return "header|" + sender + "|" + h.ID, nil
}

// toEvent maps a validated message to the intake event.
func (m *message) toEvent(h *messageHeader, kind string, production bool) (intake.Event, error) {
	ev := intake.Event{Kind: kind, Channel: "fhir"}
	if len(h.Focus) == 0 {
		return ev, fhir.Errorf(fhir.Invalid, "required", "MessageHeader.focus doit désigner l'Encounter", "MessageHeader.focus must name the Encounter", "Bundle.entry[0].resource.focus")
	}
	enc, ei := m.resolve(h.Focus[0].Reference)
	if ei < 0 || m.types[ei] != "Encounter" {
		return ev, fhir.Errorf(fhir.Invalid, "invalid", "MessageHeader.focus ne désigne pas un Encounter du message",
			"MessageHeader.focus does not name an Encounter of the message", "Bundle.entry[0].resource.focus[0]")
	}
	encPath := fmt.Sprintf("Bundle.entry[%d].resource", ei)
	pat, pi := m.resolve(enc.Subject.Reference)
	if pi < 0 || m.types[pi] != "Patient" {
		return ev, fhir.Errorf(fhir.Invalid, "invalid", "Encounter.subject ne désigne pas un Patient du message",
			"Encounter.subject does not name a Patient of the message", encPath+".subject")
	}
	patPath := fmt.Sprintf("Bundle.entry[%d].resource", pi)

	// Encounter.
	e := &ev.Encounter
	for _, id := range enc.Identifier {
		if id.Value != "" && (e.Identifier.Value == "" || typeCode(id.Type) == "VN") {
			e.Identifier = intake.Identifier{System: id.System, Value: id.Value, Type: typeCode(id.Type)}
		}
	}
	if e.Identifier.Value == "" {
		return ev, fhir.Errorf(fhir.Invalid, "required", "L'Encounter doit porter son numéro de venue (identifier)",
			"The Encounter must carry its visit number (identifier)", encPath+".identifier")
	}
	e.Class = enc.Class.Code
	if cd, ok := enc.Priority.code(systemActPriority); ok && cd.Code == "EL" {
		e.Elective = true
	}
	e.Start, e.End = parseTime(enc.Period.Start), parseTime(enc.Period.End)
	if cd, ok := enc.Hospitalization.DischargeDisposition.code(systemDisposition); ok {
		e.Disposition = cd.Code
	}
	for _, d := range enc.Diagnosis {
		cond, ci := m.resolve(d.Condition.Reference)
		if ci < 0 {
			continue
		}
		if cd, ok := cond.Code.code(systemICD10); ok {
			e.Diagnoses = append(e.Diagnoses, intake.Diagnosis{System: systemICD10, Code: cd.Code, Display: cd.Display, Principal: d.Rank == 1})
		}
	}
	// Conditions about the patient that the Encounter does not list.
	for i, t := range m.types {
		if t != "Condition" {
			continue
		}
		cond := &m.res[i]
		if cd, ok := cond.Code.code(systemICD10); ok && !hasDiagnosis(e.Diagnoses, cd.Code) {
			e.Diagnoses = append(e.Diagnoses, intake.Diagnosis{System: systemICD10, Code: cd.Code, Display: cd.Display, Principal: len(e.Diagnoses) == 0})
		}
	}
	ev.Facility.FINESS = m.facilityOf(enc.ServiceProvider)
	if enc.ServiceProvider != nil {
		ev.Facility.Name = enc.ServiceProvider.Display
	}

	// Patient.
	p := &ev.Patient
	for _, x := range pat.Extension {
		switch x.URL {
		case extIdentityReliab:
			for _, sub := range x.Extension {
				if sub.URL == "identityStatus" && sub.ValueCoding != nil {
					p.IdentityStatus = sub.ValueCoding.Code
				}
			}
		case extBirthPlace:
			if x.ValueAddress != nil {
				p.BirthPlace = x.ValueAddress.insee()
			}
		}
	}
	// docs/domain.md: the INS is a matching key only for a qualified identity.
	p.Qualified = p.IdentityStatus == intake.StatusQualified
	for j, id := range pat.Identifier {
		if IsINS(id.System) {
			if production && IsTestINS(id.System) {
				return ev, fhir.Errorf(errKind(errTestINS), "business-rule", "INS de test ou de démonstration refusé en production",
					"A test or demo INS is refused in production", fmt.Sprintf("%s.identifier[%d].system", patPath, j))
			}
			p.INS = &intake.Identifier{System: id.System, Value: id.Value, Type: typeCode(id.Type)}
			continue
		}
		p.Identifiers = append(p.Identifiers, intake.Identifier{System: id.System, Value: id.Value, Type: typeCode(id.Type)})
	}
	if p.INS == nil && len(p.Identifiers) == 0 {
		return ev, fhir.Errorf(fhir.Invalid, "required", "Le patient n'a ni INS ni IPP", "The patient has neither INS nor IPP", patPath+".identifier")
	}
	for _, n := range pat.humanNames() {
		switch {
		case n.Use == "official" || (n.Use == "" && p.BirthFamily == ""):
			p.BirthFamily, p.Given = n.Family, n.Given
		case n.Use == "usual":
			p.Family = n.Family
		}
	}
	if p.Family == "" {
		p.Family = p.BirthFamily
	}
	p.BirthDate, p.Gender = pat.BirthDate, pat.Gender
	for _, a := range pat.Address {
		if a.Use == "home" || p.Address == nil {
			p.Address = &intake.Address{Lines: a.Line, City: a.City, PostalCode: a.PostalCode, INSEE: a.insee(), Country: a.Country}
		}
	}
	for _, t := range pat.Telecom {
		if t.System == "phone" && p.Phone == "" {
			p.Phone = t.Value
		}
	}
	p.Deceased = parseTime(pat.DeceasedDateTime)

	// Declared professionals.
	for _, gp := range pat.GeneralPractitioner {
		if pr, ok := m.professional(gp, "gp"); ok {
			ev.Team = append(ev.Team, pr)
		}
	}
	for i, t := range m.types {
		if t != "CareTeam" {
			continue
		}
		ct := &m.res[i]
		for _, part := range ct.Participant {
			role := ""
			for _, r := range part.Role {
				if cd, ok := r.code(directory.SystemTeamRole); ok {
					role = cd.Code
				}
			}
			if pr, ok := m.professional(part.Member, role); ok && !hasProfessional(ev.Team, pr) {
				ev.Team = append(ev.Team, pr)
			}
		}
	}
	for i, t := range m.types {
		if t == "DocumentReference" {
			if n := letterMetaSize(m.Bundle.Entry[i].Resource); n > maxLetterMeta {
				msg := fmt.Sprintf("%d octets hors contenu, %d au plus / %d bytes besides its content, at most %d", n, maxLetterMeta, n, maxLetterMeta)
				return ev, fhir.Errorf(fhir.TooLarge, "too-costly", "DocumentReference trop volumineuse : "+msg,
					"DocumentReference too large: "+msg, fmt.Sprintf("Bundle.entry[%d].resource", i))
			}
			ev.DocumentEntry = &i
			break
		}
	}
	if err := fhirLimits(&ev, patPath, encPath); err != nil {
		return ev, err
	}

	switch err := ev.Dated(); {
	case errors.Is(err, intake.ErrNoDischargeTime):
		return ev, fhir.Errorf(errKind(err), "required", "Une sortie doit dater la fin du séjour (period.end)",
			"A discharge must give the end of the stay (period.end)", encPath+".period.end")
	case errors.Is(err, intake.ErrNoDeathTime):
		return ev, fhir.Errorf(errKind(err), "required", "Un décès doit être daté (Patient.deceasedDateTime)",
			"A death must be dated (Patient.deceasedDateTime)", patPath+".deceasedDateTime")
	}
	return ev, nil
}

func hasDiagnosis(ds []intake.Diagnosis, code string) bool {
	for _, d := range ds {
		if d.Code == code {
			return true
		}
	}
	return false
}

func hasProfessional(ps []intake.Professional, p intake.Professional) bool {
	for _, q := range ps {
		for _, a := range q.Identifier {
			for _, b := range p.Identifier {
				if a == b {
					return true
				}
			}
		}
	}
	return false
}

// professional reads a declared Practitioner or Organization.
func (m *message) professional(r reference, role string) (intake.Professional, bool) {
	pr := intake.Professional{Role: role, Name: r.Display}
	if r.Identifier != nil {
		pr.Kind = "Practitioner"
		if r.Identifier.System == directory.SystemFINESS {
			pr.Kind = "Organization"
		}
		pr.Identifier = []intake.Identifier{{System: r.Identifier.System, Value: r.Identifier.Value}}
		return pr, true
	}
	i, ok := m.byRef[r.Reference]
	if !ok {
		return pr, false
	}
	switch m.types[i] {
	case "Practitioner":
		p := &m.res[i]
		pr.Kind = "Practitioner"
		for _, id := range p.Identifier {
			pr.Identifier = append(pr.Identifier, intake.Identifier{System: id.System, Value: id.Value})
		}
		if ns := p.humanNames(); len(ns) > 0 && pr.Name == "" {
			pr.Name = strings.TrimSpace(strings.Join(ns[0].Given, " ") + " " + ns[0].Family)
		}
	case "Organization":
		o := &m.res[i]
		pr.Kind = "Organization"
		for _, id := range o.Identifier {
			pr.Identifier = append(pr.Identifier, intake.Identifier{System: id.System, Value: id.Value})
		}
		if pr.Name == "" {
			pr.Name = o.orgName()
		}
	default:
		return pr, false
	}
	return pr, len(pr.Identifier) > 0
}

func typeCode(c concept) string {
	for _, cd := range c.Coding {
		if cd.System == systemV20203 || cd.System == systemFRv20203 {
			return cd.Code
		}
	}
	return ""
}

// letter reads the lettre de liaison of an event from the archived message it
// points to (intake.Event.DocumentEntry): nil when the event has none.
func (s *Service) letter(ctx context.Context, ev intake.Event) (map[string]any, error) {
	if ev.DocumentEntry == nil {
		return nil, nil
	}
	if ev.MessageID == "" {
		return nil, bus.Permanent(errors.New("intake event names a letter but no archived message"))
	}
	m, err := s.d.Store.Messages().Get(ctx, ev.MessageID)
	if err != nil {
		// Not found is not permanent: a replica reading a lagging database
		// replica finds it a moment later.
		return nil, fmt.Errorf("read the letter of message %s: %w", ev.MessageID, err)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(m.Raw, &b); err != nil {
		return nil, bus.Permanent(fmt.Errorf("archived message %s: %w", ev.MessageID, err))
	}
	i := *ev.DocumentEntry
	if i < 0 || i >= len(b.Entry) {
		return nil, bus.Permanent(fmt.Errorf("archived message %s has no entry %d for its letter", ev.MessageID, i))
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Entry[i].Resource, &doc); err != nil || doc["resourceType"] != "DocumentReference" {
		return nil, bus.Permanent(fmt.Errorf("archived message %s: entry %d is not a DocumentReference", ev.MessageID, i))
	}
	return doc, nil
}

// letterInEvent is the stored letter as the stay event carries it: the
// DocumentReference without its attachments' content, which consumers read
// from the store (DocumentReference/<id>) when they need it. Its size is
// thus bounded by the message's field limits, not by the letter's.
func letterInEvent(r store.Resource) store.Resource {
	if b, ok := withoutContent(r.Body); ok {
		r.Body = b
	}
	return r
}

// letterMetaSize is the size of a DocumentReference without its attachments'
// content: what the stay event carries of it.
func letterMetaSize(raw json.RawMessage) int {
	if b, ok := withoutContent(raw); ok {
		return len(b)
	}
	return len(raw)
}

// withoutContent is a DocumentReference without its attachments' data;
// false when raw is not a JSON object.
func withoutContent(raw []byte) ([]byte, bool) {
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return nil, false
	}
	for _, c := range fhirjson.List(doc["content"]) {
		if a, ok := fhirjson.AsObj(c)["attachment"].(map[string]any); ok {
			delete(a, "data")
		}
	}
	b, _ := json.Marshal(doc)
	return b, true
}
