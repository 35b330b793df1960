package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// DevAccount is one development-mode account (password = login).
type DevAccount struct {
	Login, Family, Given, RPPS, Profession, Role, Specialty string
}

// DevAccounts are the accounts every development-mode instance holds
// (docs/contract.md, "Accounts"): territory Roanne. RPPS
// numbers are fictitious with a valid Luhn key.
var DevAccounts = []DevAccount{
	{"ide.martin", "MARTIN", "Claire", "10000001015", "60", RoleNurse, ""},
	{"ide.leroy", "LEROY", "Julien", "10000001023", "60", RoleNurse, ""},
	{"pharma.durand", "DURAND", "Hélène", "10000001031", "21", RolePharmacist, ""},
	{"dr.bernard", "BERNARD", "Louis", "10000001049", "10", RoleGP, "SM54"},
	{"dr.petit", "PETIT", "Camille", "10000001056", "10", RoleCardiologist, "SM04"},
	{"idec.moreau", "MOREAU", "Nadia", "10000001064", "60", RoleCoordinatingNurse, ""},
	{"coord.cpts", "COORDINATION", "Équipe", "", "", RoleCoordinator, ""},
	{"admin", "ADMINISTRATION", "Passerelle", "", "", RoleAdmin, ""},
}

// Development facilities and clients.
const (
	DevCPTS          = "cpts-demo"
	DevHospital      = "ch-demo"
	DevHospitalFINES = "420000002"
	DevHospitalNS    = "CHDEMO"
	DevCardioUF      = "4201"
	DevClient        = "chu-demo-dpi"
	DevPharmacy      = "pharmacie-demo"
	// DevPharmacyFINESS is fictitious with a valid Luhn key.
	DevPharmacyFINESS = "420000200"
	DevCommune        = "42187"
	DevPostalCode     = "42300"
)

func territory(communes, postalCodes []string) []any {
	var ext []any
	for _, c := range communes {
		ext = append(ext, map[string]any{"url": "commune", "valueCode": c})
	}
	for _, p := range postalCodes {
		ext = append(ext, map[string]any{"url": "postalCode", "valueString": p})
	}
	return []any{map[string]any{"url": ExtTerritory, "extension": ext}}
}

// DevResources returns the development directory as FHIR resources.
func DevResources() []map[string]any {
	out := []map[string]any{
		{"resourceType": "Organization", "id": DevCPTS, "active": true, "name": "CPTS Démo du Roannais",
			"type": []any{map[string]any{"text": "CPTS"}}},
		{"resourceType": "Organization", "id": DevHospital, "active": true, "name": "CH Démo",
			"identifier": []any{
				map[string]any{"system": SystemFINESS, "value": DevHospitalFINES},
				map[string]any{"system": SystemHL7NS, "value": DevHospitalNS},
			}},
		{"resourceType": "Organization", "id": DevHospital + "-uf-" + DevCardioUF, "active": true, "name": "CH Démo — Cardiologie",
			"partOf":     map[string]any{"reference": "Organization/" + DevHospital},
			"identifier": []any{map[string]any{"system": SystemUF + "/" + DevHospitalFINES, "value": DevCardioUF}},
			"type": []any{map[string]any{"coding": []any{map[string]any{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale", "code": "SM04",
				"display": "Cardiologie et maladies vasculaires"}}}}},
		{"resourceType": "Organization", "id": DevPharmacy, "active": true, "name": "Pharmacie Démo",
			"identifier": []any{map[string]any{"system": SystemFINESS, "value": DevPharmacyFINESS}}},
		{"resourceType": "Device", "id": "client-" + DevClient, "status": "active",
			"identifier": []any{map[string]any{"system": SystemClientID, "value": DevClient}},
			"deviceName": []any{map[string]any{"name": "DPI du CH Démo", "type": "user-friendly-name"}},
			"owner":      map[string]any{"reference": "Organization/" + DevHospital}},
	}
	for _, a := range DevAccounts {
		pid := "p-" + slug(a.Login)
		ids := []any{map[string]any{"system": SystemLogin, "value": a.Login}}
		if a.RPPS != "" {
			ids = append(ids,
				map[string]any{"system": SystemRPPS, "value": a.RPPS},
				map[string]any{"system": SystemIDNPS, "value": "8" + a.RPPS})
		}
		prac := map[string]any{"resourceType": "Practitioner", "id": pid, "active": true, "identifier": ids,
			"name":    []any{map[string]any{"family": a.Family, "given": []any{a.Given}}},
			"telecom": []any{map[string]any{"system": "email", "value": a.Login + "@example.invalid"}}}
		if a.Profession != "" {
			prac["qualification"] = []any{map[string]any{"code": map[string]any{"coding": []any{map[string]any{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante", "code": a.Profession}}}}}
		}
		org := DevCPTS
		if a.Role == RolePharmacist {
			org = DevPharmacy
		}
		role := map[string]any{"resourceType": "PractitionerRole", "id": "pr-" + slug(a.Login), "active": true,
			"practitioner": map[string]any{"reference": "Practitioner/" + pid},
			"organization": map[string]any{"reference": "Organization/" + org},
			"code":         []any{map[string]any{"coding": []any{map[string]any{"system": SystemTeamRole, "code": a.Role}}}},
			"extension":    territory([]string{DevCommune}, []string{DevPostalCode})}
		if a.Specialty != "" {
			role["specialty"] = []any{map[string]any{"coding": []any{map[string]any{
				"system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale", "code": a.Specialty}}}}
		}
		out = append(out, prac, role)
	}
	return out
}

func slug(login string) string {
	b := []byte(login)
	for i, c := range b {
		if c == '.' || c == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}

// SeedDev writes the development directory into tenant, creating what is
// missing and leaving what exists (a coordinator's edits survive restarts).
// It returns how many resources it created.
func SeedDev(ctx context.Context, s store.Store, tenant string) (int, error) {
	return Seed(ctx, s, tenant, DevResources())
}

// Seed creates, in one transaction, the resources (each with its
// resourceType and id) that do not exist yet, and leaves the others as they
// are. It returns how many it created.
func Seed(ctx context.Context, s store.Store, tenant string, resources []map[string]any) (int, error) {
	created := 0
	err := s.Tx(ctx, func(tx store.Tx) error {
		created = 0
		for _, r := range resources {
			body, err := json.Marshal(r)
			if err != nil {
				return err
			}
			_, err = tx.Read(ctx, r["resourceType"].(string), r["id"].(string))
			if err == nil || errors.Is(err, store.ErrGone) {
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if _, err := tx.Create(ctx, tenant, body); err != nil {
				return fmt.Errorf("seed %s/%s: %w", r["resourceType"], r["id"], err)
			}
			created++
		}
		return nil
	})
	return created, err
}
