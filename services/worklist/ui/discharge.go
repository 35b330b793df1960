package ui

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
)

// Systems the discharge form names its identifiers with: a ward without
// integration has no IPP or visit-number OID of its own, so they are
// qualified by the facility's FINESS.
const (
	systemFormIPP     = "https://passerelle.health/fhir/NamingSystem/ward-form-ipp/"
	systemFormVisit   = "https://passerelle.health/fhir/NamingSystem/ward-form-visit/"
	systemFormMessage = "https://passerelle.health/fhir/NamingSystem/ward-form-message"
	systemEvent       = "https://passerelle.health/fhir/CodeSystem/event"
	systemICD10       = "http://hl7.org/fhir/sid/icd-10"
	systemINSNIR      = "urn:oid:1.2.250.1.213.1.4.8"
	extIdentity       = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
	extINSEE          = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
)

// heartFailureCodes are the diagnoses the form offers (docs/domain.md, "Pathways").
var heartFailureCodes = [][3]string{
	{"I50.0", "Insuffisance cardiaque congestive", "Congestive heart failure"},
	{"I50.1", "Insuffisance ventriculaire gauche", "Left ventricular failure"},
	{"I50.9", "Insuffisance cardiaque, sans précision", "Heart failure, unspecified"},
	{"I11.0", "Cardiopathie hypertensive avec insuffisance cardiaque", "Hypertensive heart disease with heart failure"},
	{"I13.0", "Cardionéphropathie hypertensive avec insuffisance cardiaque", "Hypertensive heart and renal disease with heart failure"},
	{"I13.2", "Cardionéphropathie hypertensive avec insuffisances cardiaque et rénale", "Hypertensive heart and renal disease with both heart and renal failure"},
}

type dischargeData struct {
	Facilities []orgView
	Codes      [][3]string
	V          map[string]string
	Issues     []string
	// Errors holds each wrong field's message in the page's language, by
	// field name; Fields lists them in the form's order for the summary.
	Errors map[string]string
	Fields []fieldIssue
}

// fieldIssue is one wrong field, for the summary at the top of the form
// that links to it.
type fieldIssue struct{ Name, Text string }

// dischargeLabels are the label keys of every field, in the form's order.
var dischargeLabels = []struct{ name, key string }{
	{"facility", "facility"}, {"family", "family"}, {"given", "given"}, {"birth-date", "birth_date"},
	{"gender", "gender"}, {"ipp", "ipp"}, {"visit-number", "visit_number"}, {"ins", "ins"}, {"phone", "phone"},
	{"address", "address"}, {"postal-code", "postal_code"}, {"city", "city"}, {"commune", "commune"},
	{"admission", "admission"}, {"discharge", "discharge_date"}, {"diagnosis", "diagnosis"}, {"gp-rpps", "gp_rpps"},
	{"gp-name", "gp_name"}, {"letter", "letter_text"},
}

// bilingual is a message in French and in English.
type bilingual struct{ FR, EN string }

func (b bilingual) in(lang string) string {
	if lang == "en" {
		return b.EN
	}
	return b.FR
}

// dischargeFields are the form's fields; the required ones first.
var dischargeRequired = []struct{ name, key string }{
	{"facility", "facility"}, {"family", "family"}, {"given", "given"}, {"birth-date", "birth_date"},
	{"gender", "gender"}, {"ipp", "ipp"}, {"visit-number", "visit_number"}, {"admission", "admission"},
	{"discharge", "discharge_date"}, {"diagnosis", "diagnosis"},
}

func (u *UI) dischargeForm(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	u.renderDischarge(w, r, p, http.StatusOK, map[string]string{"gender": "female", "diagnosis": "I50.9", "message-id": uuid.NewString(),
		"discharge": p.Now.In(clock.Paris).Format("2006-01-02T15:04")}, nil)
}

func (u *UI) renderDischarge(w http.ResponseWriter, r *http.Request, p *page, status int, v map[string]string, issues []string) {
	u.renderDischargeErrors(w, r, p, status, v, issues, nil)
}

func (u *UI) renderDischargeErrors(w http.ResponseWriter, r *http.Request, p *page, status int, v map[string]string, issues []string,
	errs map[string]bilingual) {
	orgs, err := u.organizations(r)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d := dischargeData{Codes: heartFailureCodes, V: v, Issues: issues, Errors: map[string]string{}}
	for _, f := range dischargeLabels {
		if e, ok := errs[f.name]; ok {
			d.Errors[f.name] = e.in(p.Lang)
			text := p.T(f.key) + " — " + e.in(p.Lang)
			if e == errRequired {
				text = strings.Replace(p.T("err_required"), "%s", p.T(f.key), 1)
			}
			d.Fields = append(d.Fields, fieldIssue{Name: f.name, Text: text})
		}
	}
	for _, o := range orgs {
		if o.FINESS != "" {
			d.Facilities = append(d.Facilities, o)
		}
	}
	slices.SortFunc(d.Facilities, func(a, b orgView) int { return strings.Compare(a.Name, b.Name) })
	p.Title, p.Data = p.T("discharge"), d
	u.render(w, r, p, status, "discharge")
}

func (u *UI) discharge(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	if u.d.Intake == nil {
		u.fail(w, r, p, http.StatusNotImplemented, "err_unavailable", nil)
		return
	}
	v := map[string]string{}
	for k := range r.PostForm {
		v[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	if _, err := uuid.Parse(v["message-id"]); err != nil {
		v["message-id"] = uuid.NewString()
	}
	if errs := checkDischarge(v, p.Now); len(errs) > 0 {
		u.renderDischargeErrors(w, r, p, http.StatusUnprocessableEntity, v, nil, errs)
		return
	}
	bundle, err := dischargeBundle(v, p.Now)
	if err != nil {
		var fe *fhir.Error
		errors.As(err, &fe)
		u.renderDischarge(w, r, p, http.StatusUnprocessableEntity, v, []string{fromFHIR(fe).Text(p.Lang)})
		return
	}
	if _, err := u.d.Intake.ProcessMessage(r.Context(), p.Actor, bundle); err != nil {
		fe := fhir.FromError(err)
		if fhirapi.ServerFault(fe.Kind) {
			u.d.Log.ErrorContext(r.Context(), "discharge form", "error", err)
		}
		f := fromFHIR(fe)
		issue := f.Text(p.Lang)
		if len(f.Where) > 0 {
			issue += " (" + strings.Join(f.Where, ", ") + ")"
		}
		u.renderDischarge(w, r, p, fhirapi.Status(fe.Kind), v, []string{issue})
		return
	}
	u.back(w, r, "/discharge", msg("done_discharge"))
}

var (
	errRequired  = bilingual{"Champ obligatoire", "Required field"}
	postalCodeRE = regexp.MustCompile(`^[0-9]{5}$`)
	// An INSEE commune code is five characters: the département (two
	// digits, 2A or 2B for Corsica, or three digits overseas) then the
	// commune's number.
	communeRE = regexp.MustCompile(`^([0-9]{2}|2[AB])[0-9]{3}$`)
)

// checkDischarge checks the form field by field and returns what is wrong
// with each, so that every message sits at its field and the ward sees all
// of them at once. The project holds no list of existing communes, so a
// commune code is checked for its form only.
func checkDischarge(v map[string]string, now time.Time) map[string]bilingual {
	errs := map[string]bilingual{}
	for _, f := range dischargeRequired {
		if v[f.name] == "" {
			errs[f.name] = errRequired
		}
	}
	today := now.In(clock.Paris).Format("2006-01-02")
	if s := v["birth-date"]; s != "" {
		if b, err := time.ParseInLocation("2006-01-02", s, clock.Paris); err != nil {
			errs["birth-date"] = bilingual{"Date invalide : attendue au format AAAA-MM-JJ", "Invalid date: expected as YYYY-MM-DD"}
		} else if b.Format("2006-01-02") > today {
			errs["birth-date"] = bilingual{"La date de naissance est dans le futur", "The birth date is in the future"}
		}
	}
	var admit time.Time
	if s := v["admission"]; s != "" {
		a, err := time.ParseInLocation("2006-01-02", s, clock.Paris)
		switch {
		case err != nil:
			errs["admission"] = bilingual{"Date invalide : attendue au format AAAA-MM-JJ", "Invalid date: expected as YYYY-MM-DD"}
		case a.Format("2006-01-02") > today:
			errs["admission"] = bilingual{"La date d'admission est dans le futur", "The admission date is in the future"}
		default:
			admit = a
		}
		if b := v["birth-date"]; err == nil && b != "" && errs["birth-date"] == (bilingual{}) && s < b {
			errs["admission"] = bilingual{"L'admission précède la naissance", "The admission is before the birth"}
		}
	}
	if s := v["discharge"]; s != "" {
		out, err := time.ParseInLocation("2006-01-02T15:04", s, clock.Paris)
		switch {
		case err != nil:
			errs["discharge"] = bilingual{"Date et heure invalides : attendues au format AAAA-MM-JJ HH:MM", "Invalid date and time: expected as YYYY-MM-DD HH:MM"}
		case out.After(now):
			// The form shows the minute: a discharge is declared once it
			// has happened.
			errs["discharge"] = bilingual{"La sortie est dans le futur : déclarez-la une fois faite", "The discharge is in the future: declare it once it has happened"}
		case !admit.IsZero() && out.Before(admit):
			errs["discharge"] = bilingual{"La sortie précède l'admission (" + admit.Format("02/01/2006") + ")",
				"The discharge is before the admission (" + admit.Format("02/01/2006") + ")"}
		}
	}
	if s := v["gender"]; s != "" && !slices.Contains([]string{"female", "male", "other", "unknown"}, s) {
		errs["gender"] = bilingual{"Sexe invalide", "Invalid sex"}
	}
	if s := v["diagnosis"]; s != "" && !slices.ContainsFunc(heartFailureCodes, func(c [3]string) bool { return c[0] == s }) {
		errs["diagnosis"] = bilingual{"Diagnostic inconnu", "Unknown diagnosis"}
	}
	if s := strings.ReplaceAll(v["ins"], " ", ""); s != "" && len(s) != 15 {
		errs["ins"] = bilingual{"Le matricule INS compte 15 caractères", "The INS number has 15 characters"}
	}
	if s := strings.ReplaceAll(v["postal-code"], " ", ""); s != "" && !postalCodeRE.MatchString(s) {
		errs["postal-code"] = bilingual{"Un code postal compte 5 chiffres", "A postal code has 5 digits"}
	}
	if s := strings.ToUpper(v["commune"]); s != "" && !communeRE.MatchString(s) {
		errs["commune"] = bilingual{"Un code commune INSEE compte 5 caractères (par exemple 42187 pour Roanne)",
			"An INSEE commune code has 5 characters (for example 42187 for Roanne)"}
	}
	if s := strings.ReplaceAll(v["gp-rpps"], " ", ""); s != "" {
		var ie *ident.Error
		if err := ident.CheckRPPS(s); errors.As(err, &ie) {
			errs["gp-rpps"] = bilingual{"Numéro RPPS incorrect : " + ie.FR, "Wrong RPPS number: " + ie.EN}
		}
		if strings.TrimSpace(v["gp-name"]) == "" {
			errs["gp-name"] = bilingual{"Indiquez le nom du médecin traitant dont vous donnez le RPPS",
				"Give the name of the GP whose RPPS number you entered"}
		}
	}
	return errs
}

// dischargeBundle builds the FHIR message Bundle of a discharge-notification
// from the form, as a hospital system would send it to $process-message
// (docs/contract.md, "$process-message").
func dischargeBundle(v map[string]string, now time.Time) ([]byte, error) {
	bad := func(field, fr, en string) error {
		return fhir.Errorf(fhir.Unprocessable, "invalid", fr, en, field)
	}
	birth, err := time.ParseInLocation("2006-01-02", v["birth-date"], clock.Paris)
	if err != nil || birth.After(now) {
		return nil, bad("birth-date", "Date de naissance invalide", "Invalid birth date")
	}
	admit, err := time.ParseInLocation("2006-01-02", v["admission"], clock.Paris)
	if err != nil {
		return nil, bad("admission", "Date d'admission invalide", "Invalid admission date")
	}
	out, err := time.ParseInLocation("2006-01-02T15:04", v["discharge"], clock.Paris)
	if err != nil {
		return nil, bad("discharge", "Date de sortie invalide", "Invalid discharge date")
	}
	if out.Before(admit) {
		return nil, bad("discharge", "La sortie précède l'admission", "The discharge is before the admission")
	}
	if !slices.Contains([]string{"female", "male", "other", "unknown"}, v["gender"]) {
		return nil, bad("gender", "Sexe invalide", "Invalid sex")
	}
	var dx [3]string
	for _, c := range heartFailureCodes {
		if c[0] == v["diagnosis"] {
			dx = c
		}
	}
	if dx[0] == "" {
		return nil, bad("diagnosis", "Diagnostic inconnu", "Unknown diagnosis")
	}
	finess := v["facility"]
	// The form's message id, made when the form was shown, keeps a
	// re-submitted form from declaring the discharge twice.
	msgID := v["message-id"]
	urn := func() string { return "urn:uuid:" + uuid.NewString() }
	hdrURL, patURL, encURL, condURL := urn(), urn(), urn(), urn()
	type obj = map[string]any
	status := "PROV"
	idents := []any{obj{"type": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}}},
		"system": systemFormIPP + finess, "value": v["ipp"]}}
	if ins := strings.ReplaceAll(v["ins"], " ", ""); ins != "" {
		if len(ins) != 15 {
			return nil, bad("ins", "Le matricule INS a 15 caractères", "The INS number has 15 characters")
		}
		// The ward declares the identity qualified by giving the INS
		// (docs/domain.md: an INS travels only with a qualified identity).
		status = "QUAL"
		idents = append([]any{obj{"use": "official", "type": obj{"coding": []any{obj{
			"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR"}}},
			"system": systemINSNIR, "value": ins}}, idents...)
	}
	given := strings.Fields(v["given"])
	patient := obj{"resourceType": "Patient",
		"extension": []any{obj{"url": extIdentity, "extension": []any{obj{"url": "identityStatus", "valueCoding": obj{
			"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status", "code": status}}}}},
		"identifier": idents,
		"name":       []any{obj{"use": "official", "family": strings.ToUpper(v["family"]), "given": given}},
		"gender":     v["gender"], "birthDate": birth.Format("2006-01-02")}
	if v["phone"] != "" {
		patient["telecom"] = []any{obj{"system": "phone", "value": v["phone"], "use": "home"}}
	}
	if v["address"] != "" || v["postal-code"] != "" || v["city"] != "" || v["commune"] != "" {
		addr := obj{"use": "home", "country": "FR"}
		if v["address"] != "" {
			addr["line"] = []any{v["address"]}
		}
		if v["postal-code"] != "" {
			addr["postalCode"] = strings.ReplaceAll(v["postal-code"], " ", "")
		}
		if v["city"] != "" {
			addr["city"] = v["city"]
		}
		if v["commune"] != "" {
			addr["extension"] = []any{obj{"url": extINSEE, "valueCoding": obj{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM", "code": strings.ToUpper(v["commune"])}}}
		}
		patient["address"] = []any{addr}
	}
	entries := []any{
		obj{"fullUrl": hdrURL, "resource": obj{"resourceType": "MessageHeader", "id": strings.TrimPrefix(hdrURL, "urn:uuid:"),
			"eventCoding": obj{"system": systemEvent, "code": "discharge-notification"},
			"source":      obj{"name": "Passerelle — formulaire de sortie", "endpoint": "urn:passerelle:ward-form"},
			"sender":      obj{"identifier": obj{"system": directory.SystemFINESS, "value": finess}},
			"focus":       []any{obj{"reference": encURL}}}},
		obj{"fullUrl": patURL, "resource": patient},
		obj{"fullUrl": encURL, "resource": obj{"resourceType": "Encounter",
			"identifier": []any{obj{"type": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}}},
				"system": systemFormVisit + finess, "value": v["visit-number"]}},
			"status":          "finished",
			"class":           obj{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
			"subject":         obj{"reference": patURL},
			"period":          obj{"start": admit.Format(time.RFC3339), "end": out.Format(time.RFC3339)},
			"diagnosis":       []any{obj{"condition": obj{"reference": condURL}, "rank": 1}},
			"hospitalization": obj{"dischargeDisposition": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}}}},
			"serviceProvider": obj{"identifier": obj{"system": directory.SystemFINESS, "value": finess}}}},
		obj{"fullUrl": condURL, "resource": obj{"resourceType": "Condition",
			"clinicalStatus": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}}},
			"category":       []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}}}},
			"code":           obj{"coding": []any{obj{"system": systemICD10, "code": dx[0], "display": dx[1]}}},
			"subject":        obj{"reference": patURL}}},
	}
	if rpps := strings.ReplaceAll(v["gp-rpps"], " ", ""); rpps != "" {
		gpURL := urn()
		patient["generalPractitioner"] = []any{obj{"reference": gpURL}}
		entries = append(entries, obj{"fullUrl": gpURL, "resource": obj{"resourceType": "Practitioner",
			"identifier": []any{obj{"system": directory.SystemRPPS, "value": rpps}},
			"name":       []any{humanName(v["gp-name"])}}})
	}
	if text := strings.TrimSpace(v["letter"]); text != "" {
		entries = append(entries, obj{"fullUrl": urn(), "resource": obj{"resourceType": "DocumentReference", "status": "current",
			"type":    obj{"coding": []any{obj{"system": "http://loinc.org", "code": "34133-9", "display": "Summary of episode note"}}, "text": "Lettre de liaison de sortie"},
			"subject": obj{"reference": patURL}, "date": now.Format(time.RFC3339),
			"content": []any{obj{"attachment": obj{"contentType": "text/plain; charset=utf-8", "language": "fr",
				"data": base64.StdEncoding.EncodeToString([]byte(text)), "title": "Lettre de liaison"}}}}})
	}
	b := obj{"resourceType": "Bundle", "type": "message",
		"identifier": obj{"system": systemFormMessage, "value": msgID},
		"timestamp":  now.Format(time.RFC3339), "entry": entries}
	return json.Marshal(b)
}

func actorOf(r *http.Request) directory.Actor {
	a, _ := access.ActorFrom(r.Context())
	return a
}

// humanName reads a name typed in one field ("Anne Généraliste", "Dr Anne
// de la Fontaine"): the last word is the family name, the others given
// names, the whole kept as text. A Practitioner must have a name.
func humanName(typed string) map[string]any {
	words := strings.Fields(typed)
	n := map[string]any{"text": strings.Join(words, " ")}
	if len(words) > 0 {
		n["family"] = words[len(words)-1]
	}
	if len(words) > 1 {
		n["given"] = words[:len(words)-1]
	}
	return n
}
