package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
)

func pathErr(path, fr, en string, args ...any) ImportError {
	return ImportError{Path: path, FR: fmt.Sprintf(fr, args...), EN: fmt.Sprintf(en, args...)}
}

func identErr(path string, err error) ImportError {
	var ie *ident.Error
	if errors.As(err, &ie) {
		return ImportError{Path: path, FR: ie.FR, EN: ie.EN}
	}
	return pathErr(path, "%v", "%v", err)
}

// ImportBundle imports a FHIR Bundle (type collection, transaction or
// batch) of Practitioner, PractitionerRole and Organization resources.
// Each resource is written as given (a re-import of the same Bundle
// changes nothing), under its id, or, without one, under the id of the
// directory resource with the same RPPS or FINESS, or a derived one.
// References between entries may use an entry's fullUrl or
// "<Type>/<id>"; they are written as "<Type>/<id>".
func (im *Importer) ImportBundle(ctx context.Context, data []byte) (Result, error) {
	b, err := decode(data)
	if err != nil {
		return Result{}, Errors{pathErr("Bundle", "JSON invalide : %v", "invalid JSON: %v", err)}
	}
	var errs Errors
	if str(b["resourceType"]) != "Bundle" {
		return Result{}, Errors{pathErr("Bundle.resourceType", "un Bundle est attendu", "a Bundle is expected")}
	}
	if t := str(b["type"]); t != "collection" && t != "transaction" && t != "batch" {
		errs = append(errs, pathErr("Bundle.type", "type %q : collection, transaction ou batch attendu", "type %q: collection, transaction or batch expected", t))
	}
	snap, err := im.load(ctx)
	if err != nil {
		return Result{}, err
	}
	type entry struct {
		i    int
		path string
		res  map[string]any
		typ  string
		ref  string // final "Type/id"
	}
	var entries []*entry
	alias := map[string]string{} // fullUrl or given "Type/id" → final "Type/id"
	logins, rpps, finess := map[string]string{}, map[string]string{}, map[string]string{}
	for i, e := range list(b["entry"]) {
		path := fmt.Sprintf("Bundle.entry[%d].resource", i)
		res := asMap(asMap(e)["resource"])
		if res == nil {
			errs = append(errs, pathErr(path, "ressource manquante", "resource missing"))
			continue
		}
		en := &entry{i: i, path: path, res: res, typ: str(res["resourceType"])}
		switch en.typ {
		case "Practitioner", "PractitionerRole", "Organization":
		default:
			errs = append(errs, pathErr(path+".resourceType", "%q : Practitioner, PractitionerRole ou Organization attendu", "%q: Practitioner, PractitionerRole or Organization expected", en.typ))
			continue
		}
		id := str(res["id"])
		if id != "" && !validID(id) {
			errs = append(errs, pathErr(path+".id", "id invalide (1 à 64 caractères : lettres, chiffres, - et .)", "invalid id (1 to 64 characters: letters, digits, - and .)"))
			continue
		}
		given := ""
		if id != "" {
			given = en.typ + "/" + id
		}
		// Identifiers: check keys, find the directory resource.
		var key string
		nerrs := len(errs)
		for j, x := range identifiers(res) {
			p := fmt.Sprintf("%s.identifier[%d].value", path, j)
			if check, ok := ident.ForSystem(x[0]); ok {
				if err := check(x[1]); err != nil {
					errs = append(errs, identErr(p, err))
					continue
				}
			}
			switch {
			case en.typ == "Practitioner" && x[0] == SystemRPPS:
				if prev, dup := rpps[x[1]]; dup {
					errs = append(errs, pathErr(p, "RPPS déjà dans %s", "RPPS already in %s", prev))
				}
				rpps[x[1]], key = path, x[1]
				if ref, ok := snap.byRPPS[x[1]]; ok {
					en.ref = ref
				}
			case en.typ == "Practitioner" && x[0] == SystemLogin:
				if !ValidLogin(x[1]) {
					errs = append(errs, pathErr(p, "identifiant de connexion invalide", "invalid login"))
				}
				if prev, dup := logins[x[1]]; dup {
					errs = append(errs, pathErr(p, "identifiant de connexion déjà dans %s", "login already in %s", prev))
				}
				logins[x[1]] = path
			case en.typ == "Organization" && x[0] == SystemFINESS:
				if prev, dup := finess[x[1]]; dup {
					errs = append(errs, pathErr(p, "FINESS déjà dans %s", "FINESS already in %s", prev))
				}
				finess[x[1]], key = path, x[1]
				if ref, ok := snap.byFINESS[x[1]]; ok {
					en.ref = ref
				}
			}
		}
		switch {
		case en.ref != "":
		case given != "":
			en.ref = given
		case en.typ == "Practitioner" && key != "":
			en.ref = "Practitioner/p-rpps-" + key
		case en.typ == "Organization" && key != "":
			en.ref = "Organization/org-finess-" + key
		case en.typ == "PractitionerRole":
			// Named once its practitioner is known.
		case len(errs) > nerrs:
			continue
		default:
			errs = append(errs, pathErr(path, "ni id, ni identifiant RPPS ou FINESS", "neither an id nor an RPPS or FINESS identifier"))
			continue
		}
		if en.typ == "Practitioner" {
			if names := list(res["name"]); len(names) == 0 || strings.TrimSpace(str(asMap(names[0])["family"])) == "" {
				errs = append(errs, pathErr(path+".name", "nom de famille manquant", "family name missing"))
			}
		}
		if fu := str(asMap(e)["fullUrl"]); fu != "" && en.ref != "" {
			alias[fu] = en.ref
		}
		if given != "" && en.ref != "" {
			alias[given] = en.ref
		}
		entries = append(entries, en)
	}
	resolve := func(ref, typ string) (string, bool) {
		if r, ok := alias[ref]; ok && strings.HasPrefix(r, typ+"/") {
			return r, true
		}
		if strings.HasPrefix(ref, typ+"/") {
			if _, ok := snap.res[ref]; ok {
				return ref, true
			}
		}
		return "", false
	}
	// Logins: not taken by another practitioner of the directory.
	for _, en := range entries {
		if en.typ != "Practitioner" {
			continue
		}
		for j, x := range identifiers(en.res) {
			if x[0] != SystemLogin {
				continue
			}
			if owner, ok := snap.byLogin[x[1]]; ok && owner != en.ref {
				errs = append(errs, pathErr(fmt.Sprintf("%s.identifier[%d].value", en.path, j), "identifiant déjà pris par %s", "login already taken by %s", owner))
			}
		}
	}
	var plan []write
	roleIDs := map[string]string{}
	for _, en := range entries {
		res := en.res
		if en.typ == "PractitionerRole" {
			codes := teamRoles(res)
			var code string
			switch {
			case len(codes) == 0:
				errs = append(errs, pathErr(en.path+".code", "code de rôle d'équipe manquant (%s)", "team-role code missing (%s)", SystemTeamRole))
			case codes[0] == RoleExternal:
				errs = append(errs, pathErr(en.path+".code", "le rôle external désigne un professionnel qui n'est pas membre : il ne s'importe pas", "external is a professional who is not a member: not importable"))
			case !slices.Contains(MemberRoles, codes[0]):
				errs = append(errs, pathErr(en.path+".code", "rôle d'équipe %q inconnu (%s)", "unknown team role %q (%s)", codes[0], strings.Join(MemberRoles, ", ")))
			default:
				code = codes[0]
			}
			pref, ok := resolve(refOf(res["practitioner"]), "Practitioner")
			if !ok {
				errs = append(errs, pathErr(en.path+".practitioner.reference", "%q ne désigne aucun Practitioner du Bundle ni de l'annuaire", "%q names no Practitioner of the Bundle or the directory", refOf(res["practitioner"])))
			} else {
				asMap(res["practitioner"])["reference"] = pref
			}
			if o := refOf(res["organization"]); o != "" {
				oref, ok := resolve(o, "Organization")
				if !ok {
					errs = append(errs, pathErr(en.path+".organization.reference", "%q ne désigne aucune Organization du Bundle ni de l'annuaire", "%q names no Organization of the Bundle or the directory", o))
				} else {
					asMap(res["organization"])["reference"] = oref
				}
			} else if snap.cptsFound {
				res["organization"] = map[string]any{"reference": snap.cpts}
			} else {
				errs = append(errs, pathErr(en.path+".organization", "organisation manquante et pas d'organisation CPTS dans l'annuaire", "organization missing, and the directory has no CPTS Organization"))
			}
			for k, e := range list(res["extension"]) {
				if str(asMap(e)["url"]) != ExtTerritory {
					continue
				}
				for l, s := range list(asMap(e)["extension"]) {
					sm := asMap(s)
					p := fmt.Sprintf("%s.extension[%d].extension[%d]", en.path, k, l)
					switch str(sm["url"]) {
					case "commune":
						if !ValidCommune(str(sm["valueCode"])) {
							errs = append(errs, pathErr(p+".valueCode", "code commune INSEE invalide (5 caractères)", "invalid INSEE commune code (5 characters)"))
						}
					case "postalCode":
						if !ValidPostalCode(str(sm["valueString"])) {
							errs = append(errs, pathErr(p+".valueString", "code postal invalide (5 chiffres)", "invalid postal code (5 digits)"))
						}
					}
				}
			}
			if en.ref == "" && pref != "" && code != "" {
				if old, ok := snap.roleOf(pref, code); ok {
					en.ref = "PractitionerRole/" + old.ID
				} else {
					key := strings.TrimPrefix(pref, "Practitioner/")
					if strings.HasPrefix(key, "p-rpps-") {
						key = "rpps-" + strings.TrimPrefix(key, "p-rpps-")
					}
					en.ref = "PractitionerRole/pr-" + key + "-" + code
				}
			}
			if en.ref != "" {
				if prev, dup := roleIDs[en.ref]; dup {
					errs = append(errs, pathErr(en.path, "même PractitionerRole que %s", "same PractitionerRole as %s", prev))
				}
				roleIDs[en.ref] = en.path
			}
		}
		if en.ref == "" {
			continue
		}
		_, id, _ := strings.Cut(en.ref, "/")
		res["id"] = id
		member := -1
		switch en.typ {
		case "PractitionerRole":
			member = en.i
		case "Practitioner":
			member = -2 // counted with its roles below
		}
		plan = append(plan, write{typ: en.typ, id: id, body: normalize(res), member: member, role: en.typ == "PractitionerRole"})
	}
	if len(errs) > 0 {
		return Result{}, errs
	}
	// Organizations first, then practitioners, then roles; a practitioner
	// counts with the members (roles) that name it.
	slices.SortStableFunc(plan, func(a, b write) int { return order(a.typ) - order(b.typ) })
	roleOfPrac := map[string]int{}
	for _, w := range plan {
		if w.role {
			p := refOf(w.body["practitioner"])
			if _, ok := roleOfPrac[p]; !ok {
				roleOfPrac[p] = w.member
			}
		}
	}
	for i, w := range plan {
		if w.typ == "Practitioner" {
			if m, ok := roleOfPrac["Practitioner/"+w.id]; ok {
				plan[i].member = m
			} else {
				plan[i].member = -1
			}
		}
	}
	return im.apply(ctx, snap, plan)
}

func order(typ string) int {
	switch typ {
	case "Organization":
		return 0
	case "Practitioner":
		return 1
	}
	return 2
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
