package demo

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
)

// Commune is a commune of the demo territory.
type Commune struct {
	INSEE, Postal, Name string
	// Weight is its share of the patients (its population, roughly).
	Weight int
}

// Communes of the demo territory, around Roanne.
var Communes = []Commune{
	{directory.DevCommune, directory.DevPostalCode, "ROANNE", 34},
	{"42184", "42153", "RIORGES", 11},
	{"42127", "42300", "MABLY", 8},
	{"42071", "42120", "LE COTEAU", 7},
	{"42332", "42300", "VILLEREST", 5},
	{"42182", "42370", "RENAISON", 3},
}

// Hospital is a hospital that sends its ADT feed to the CPTS.
type Hospital struct {
	ID, Name, FINESS, Namespace, OID string
	// Units: cardiology and geriatrics (UF codes).
	Cardiology, Geriatrics string
}

// The two hospitals of the demo: the development hospital and a second one
// of the region, whose stays count as readmissions too.
var (
	CHDemo = Hospital{ID: directory.DevHospital, Name: "CH Démo", FINESS: directory.DevHospitalFINES, Namespace: directory.DevHospitalNS,
		OID: "2.999.250.1.42.1", Cardiology: directory.DevCardioUF, Geriatrics: "4205"}
	Forez = Hospital{ID: "clinique-demo-forez", Name: "Clinique Démo du Forez", FINESS: withLuhn("42000003"), Namespace: "CLFOREZ",
		OID: "2.999.250.1.42.2", Cardiology: "5101", Geriatrics: "5105"}
)

// member is one professional of the demo CPTS beyond the development
// accounts.
type member struct {
	login, family, given, profession, role, specialty string
	communes                                          []int // indexes in Communes
	pharmacy                                          int   // for pharmacists: index in pharmacies
	capacity                                          int
}

// pharmacies of the demo territory (their pharmacists are members).
var pharmacies = []struct{ Name, FINESS string }{
	{"Pharmacie Démo des Tilleuls", withLuhn("42000021")},
	{"Pharmacie Démo du Marché", withLuhn("42000022")},
	{"Pharmacie Démo de la Côte", withLuhn("42000023")},
}

// members are invented: bird names, so that nobody takes them for real
// people; RPPS numbers come from rppsOf and are fictitious.
var members = []member{
	{"ide.alouette", "ALOUETTE", "Sophie", "60", directory.RoleNurse, "", []int{0, 2}, 0, 0},
	{"ide.bouvreuil", "BOUVREUIL", "Marc", "60", directory.RoleNurse, "", []int{0, 3}, 0, 0},
	{"ide.chardonneret", "CHARDONNERET", "Élodie", "60", directory.RoleNurse, "", []int{0, 1}, 0, 0},
	{"ide.fauvette", "FAUVETTE", "Aurélie", "60", directory.RoleNurse, "", []int{1, 5}, 0, 0},
	{"ide.grive", "GRIVE", "Thomas", "60", directory.RoleNurse, "", []int{1, 2}, 0, 0},
	{"ide.hirondelle", "HIRONDELLE", "Laure", "60", directory.RoleNurse, "", []int{2, 4}, 0, 0},
	{"ide.linotte", "LINOTTE", "Pauline", "60", directory.RoleNurse, "", []int{3, 4}, 0, 0},
	{"ide.mesange", "MÉSANGE", "Karim", "60", directory.RoleNurse, "", []int{4, 0}, 0, 0},
	{"ide.pinson", "PINSON", "Anaïs", "60", directory.RoleNurse, "", []int{5, 1}, 0, 0},
	{"ide.roitelet", "ROITELET", "Céline", "60", directory.RoleNurse, "", []int{0}, 0, 12},
	{"ide.sittelle", "SITTELLE", "Nicolas", "60", directory.RoleNurse, "", []int{3, 0}, 0, 0},
	{"ide.verdier", "VERDIER", "Manon", "60", directory.RoleNurse, "", []int{1, 3}, 0, 0},
	{"dr.courlis", "COURLIS", "Bernard", "10", directory.RoleGP, "SM54", []int{0}, 0, 0},
	{"dr.etourneau", "ÉTOURNEAU", "Agnès", "10", directory.RoleGP, "SM54", []int{0}, 0, 0},
	{"dr.geai", "GEAI", "Olivier", "10", directory.RoleGP, "SM54", []int{1}, 0, 0},
	{"dr.heron", "HÉRON", "Isabelle", "10", directory.RoleGP, "SM54", []int{2}, 0, 0},
	{"dr.loriot", "LORIOT", "François", "10", directory.RoleGP, "SM54", []int{3}, 0, 0},
	{"dr.martinet", "MARTINET", "Sylvie", "10", directory.RoleGP, "SM54", []int{4}, 0, 0},
	{"dr.perdrix", "PERDRIX", "Yves", "10", directory.RoleGP, "SM54", []int{5}, 0, 0},
	{"dr.ramier", "RAMIER", "Claire", "10", directory.RoleGP, "SM54", []int{1, 2}, 0, 0},
	{"dr.caille", "CAILLE", "Hugo", "10", directory.RoleCardiologist, "SM04", []int{0, 1, 2, 3, 4, 5}, 0, 0},
	{"dr.bruant", "BRUANT", "Nathalie", "10", directory.RoleCardiologist, "SM04", []int{0, 1, 2, 3, 4, 5}, 0, 0},
	{"pharma.serin", "SERIN", "Lucie", "21", directory.RolePharmacist, "", []int{0, 2, 4}, 0, 0},
	{"pharma.tarier", "TARIER", "Mathieu", "21", directory.RolePharmacist, "", []int{1, 5}, 1, 0},
	{"pharma.traquet", "TRAQUET", "Inès", "21", directory.RolePharmacist, "", []int{3}, 2, 0},
	{"pharma.ortolan", "ORTOLAN", "Julie", "21", directory.RolePharmacist, "", []int{0, 1}, 0, 0},
	{"ide.tourterelle", "TOURTERELLE", "Sandrine", "60", directory.RoleCoordinatingNurse, "", []int{0, 1, 2, 3, 4, 5}, 0, 0},
	{"ide.pivert", "PIVERT", "Damien", "60", directory.RoleNurse, "", []int{2, 5}, 0, 0},
	{"ide.moineau", "MOINEAU", "Zoé", "60", directory.RoleNurse, "", []int{0, 4}, 0, 0},
	{"dr.faisan", "FAISAN", "Rémi", "10", directory.RoleGP, "SM54", []int{0}, 0, 0},
	{"dr.bergeronnette", "BERGERONNETTE", "Hélène", "10", directory.RoleCardiologist, "SM04", []int{0, 1, 2, 3, 4, 5}, 0, 0},
}

// rppsOf gives member i a fictitious RPPS number with a valid key, apart
// from the development accounts' numbers.
func rppsOf(i int) string { return withLuhn(fmt.Sprintf("1000020%03d", i)) }

// withLuhn appends the key that makes digits (8 for a FINESS number, 10
// for an RPPS number) pass the identifier's own check.
func withLuhn(digits string) string {
	check := ident.CheckRPPS
	if len(digits) == 8 {
		check = ident.CheckFINESS
	}
	for k := '0'; k <= '9'; k++ {
		if check(digits+string(k)) == nil {
			return digits + string(k)
		}
	}
	panic("demo: no key for " + digits)
}

// MembersCSV is the demo CPTS's member file, in the format of `passerelle
// directory import`: the demo loads it through the same importer.
func MembersCSV() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(append(append([]string{}, directory.CSVColumns...), "specialty", "capacity", "organization_finess", "organization_name"))
	for i, m := range members {
		var communes, postals []string
		seen := map[string]bool{}
		for _, c := range m.communes {
			communes = append(communes, Communes[c].INSEE)
			if !seen[Communes[c].Postal] {
				seen[Communes[c].Postal] = true
				postals = append(postals, Communes[c].Postal)
			}
		}
		rpps, prof := rppsOf(i), m.profession
		capacity, orgFINESS, orgName := "", "", ""
		if m.capacity > 0 {
			capacity = fmt.Sprint(m.capacity)
		}
		if m.role == directory.RolePharmacist {
			orgFINESS, orgName = pharmacies[m.pharmacy].FINESS, pharmacies[m.pharmacy].Name
		}
		_ = w.Write([]string{rpps, m.family, m.given, prof, m.role, strings.Join(communes, ";"), strings.Join(postals, ";"),
			fmt.Sprintf("+336000%05d", 200+i), m.login + "@example.invalid", m.login, m.specialty, capacity, orgFINESS, orgName})
	}
	w.Flush()
	return buf.Bytes()
}

// Account is a demo member's login and name.
type Account struct{ Login, Name string }

// Members are the demo CPTS's members beyond the development accounts.
func Members() []Account {
	var out []Account
	for _, m := range members {
		out = append(out, Account{m.login, m.given + " " + m.family})
	}
	return out
}

// Logins are every account of the demo CPTS: the development accounts and
// the members of MembersCSV.
func Logins() []string {
	var out []string
	for _, a := range directory.DevAccounts {
		out = append(out, a.Login)
	}
	for _, m := range members {
		out = append(out, m.login)
	}
	return out
}

// organizations are the demo's hospitals and units beyond the development
// directory: configuration a coordinator would enter once.
func organizations() []map[string]any {
	uf := func(h Hospital, code, name, specialty string) map[string]any {
		m := map[string]any{"resourceType": "Organization", "id": h.ID + "-uf-" + code, "active": true, "name": h.Name + " — " + name,
			"partOf":     map[string]any{"reference": "Organization/" + h.ID},
			"identifier": []any{map[string]any{"system": directory.SystemUF + "/" + h.FINESS, "value": code}}}
		if specialty != "" {
			m["type"] = []any{map[string]any{"coding": []any{map[string]any{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale", "code": specialty}}}}
		}
		return m
	}
	return []map[string]any{
		{"resourceType": "Organization", "id": Forez.ID, "active": true, "name": Forez.Name,
			"identifier": []any{
				map[string]any{"system": directory.SystemFINESS, "value": Forez.FINESS},
				map[string]any{"system": directory.SystemHL7NS, "value": Forez.Namespace},
			}},
		uf(Forez, Forez.Cardiology, "Cardiologie", "SM04"),
		uf(Forez, Forez.Geriatrics, "Gériatrie", ""),
		uf(CHDemo, CHDemo.Geriatrics, "Gériatrie", ""),
	}
}
