// Package directory knows the CPTS member directory: who a token belongs to
// (Practitioner by one configured identifier system: login, RPPS or
// idNat_PS; a hospital system by client id),
// which team roles they hold, the development directory seeded in every
// development-mode instance, and the import of members from a CSV file or a
// FHIR Bundle (Importer, `passerelle directory import`).
package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Identifier systems (docs/domain.md; logins: docs/architecture.md).
const (
	SystemLogin    = "https://passerelle.health/fhir/NamingSystem/login"
	SystemClientID = "https://passerelle.health/fhir/NamingSystem/client-id"
	// SystemCertificate identifies a hospital system's Device by the
	// SHA-256 fingerprint of the TLS client certificate it sends HL7 v2
	// with (Fingerprint: lower-case hex, no colons).
	SystemCertificate = "https://passerelle.health/fhir/NamingSystem/certificate-sha256"
	SystemHL7NS       = "https://passerelle.health/fhir/NamingSystem/hl7-namespace"
	SystemUF          = "https://passerelle.health/fhir/NamingSystem/uf"
	SystemRPPS        = "https://rpps.esante.gouv.fr"
	SystemIDNPS       = "urn:oid:1.2.250.1.71.4.2.1"
	SystemFINESS      = "http://finess.sante.gouv.fr"
	SystemTeamRole    = "https://passerelle.health/fhir/CodeSystem/team-role"
	// ExtTerritory holds the communes (INSEE) and postal codes a member covers.
	ExtTerritory = "https://passerelle.health/fhir/StructureDefinition/territory"
)

// Team roles (docs/contract.md, "Accounts"; team-role code system).
const (
	RoleGP                = "gp"
	RoleNurse             = "nurse"
	RolePharmacist        = "pharmacist"
	RoleCardiologist      = "cardiologist"
	RoleCoordinatingNurse = "coordinating-nurse"
	RoleCoordinator       = "coordinator"
	RoleAdmin             = "admin"
	RoleExternal          = "external"
)

// ErrUnknown is returned when a token matches nobody in the directory.
var ErrUnknown = errors.New("not in the directory")

// Role is one PractitionerRole of a person.
type Role struct {
	ID           string // PractitionerRole id
	Code         string // team role
	Organization string // "Organization/<id>"
}

// Actor is who is acting: a member of the directory, or a hospital system.
type Actor struct {
	Tenant string
	// Practitioner is "Practitioner/<id>" for a person.
	Practitioner string
	Roles        []Role
	// System is set for a hospital system: its client id, its Device and its
	// facility's FINESS.
	System       string
	Device       string
	FINESS       string
	Organization string
}

// Has tells whether the actor holds the team role.
func (a Actor) Has(code string) bool {
	for _, r := range a.Roles {
		if r.Code == code {
			return true
		}
	}
	return false
}

// Reference is the actor as the agent of an audit record or a Provenance.
func (a Actor) Reference() string {
	switch {
	case a.Device != "":
		return a.Device
	case len(a.Roles) > 0:
		return "PractitionerRole/" + a.Roles[0].ID
	}
	return a.Practitioner
}

// Resolver finds actors in the directory, with a short cache: a change of
// role takes effect within TTL.
type Resolver struct {
	Store store.Store
	// LoginSystem is the one identifier system a person's login claim is
	// matched against (default SystemLogin). Only one: a login name is
	// chosen at the identity provider, while RPPS numbers are public, so a
	// login tried against several systems lets whoever picks a colleague's
	// RPPS as user name become that colleague.
	LoginSystem string
	TTL         time.Duration
	Now         func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	a   Actor
	err error
	at  time.Time
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) lookup(key string, fn func() (Actor, error)) (Actor, error) {
	ttl := r.TTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	r.mu.Lock()
	c, ok := r.cache[key]
	r.mu.Unlock()
	if ok && r.now().Sub(c.at) < ttl {
		return c.a, c.err
	}
	a, err := fn()
	if err == nil || errors.Is(err, ErrUnknown) {
		r.mu.Lock()
		if r.cache == nil {
			r.cache = map[string]cached{}
		}
		r.cache[key] = cached{a: a, err: err, at: r.now()}
		r.mu.Unlock()
	}
	return a, err
}

// Forget empties the cache (after a directory change).
func (r *Resolver) Forget() {
	r.mu.Lock()
	r.cache = nil
	r.mu.Unlock()
}

func sp(s string) *string { return &s }

func tokenParam(name, system, code string) store.Param {
	return store.Param{Name: name, Kind: store.KindToken, Values: []store.Value{{System: sp(system), Code: code}}}
}

// LoginSystems are the identifier systems a login claim may be matched
// against (docs/architecture.md, "Identity and access"): the directory's own login, RPPS or
// idNat_PS.
var LoginSystems = []string{SystemLogin, SystemRPPS, SystemIDNPS}

// Person resolves a person's login claim: the Practitioner whose identifier
// of system LoginSystem is login, and their active PractitionerRoles.
func (r *Resolver) Person(ctx context.Context, tenant, login string) (Actor, error) {
	sys := r.LoginSystem
	if sys == "" {
		sys = SystemLogin
	}
	return r.lookup("p\x00"+tenant+"\x00"+login, func() (Actor, error) {
		page, err := r.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Practitioner", Count: 2,
			Params: []store.Param{tokenParam("identifier", sys, login)}})
		if err != nil {
			return Actor{}, fmt.Errorf("find practitioner: %w", err)
		}
		if len(page.Resources) > 1 {
			return Actor{}, fmt.Errorf("%w: %d practitioners share the identifier", ErrUnknown, len(page.Resources))
		}
		if len(page.Resources) == 0 {
			return Actor{}, ErrUnknown
		}
		prac := page.Resources[0]
		a := Actor{Tenant: tenant, Practitioner: "Practitioner/" + prac.ID}
		page, err = r.Store.Search(ctx, store.Query{Tenant: tenant, Type: "PractitionerRole", Count: 50,
			Params: []store.Param{{Name: "practitioner", Kind: store.KindReference, Values: []store.Value{{Ref: a.Practitioner}}}}})
		if err != nil {
			return Actor{}, fmt.Errorf("find roles: %w", err)
		}
		for _, res := range page.Resources {
			var pr struct {
				Active       *bool `json:"active"`
				Organization struct {
					Reference string `json:"reference"`
				} `json:"organization"`
				Code []struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"code"`
			}
			if err := json.Unmarshal(res.Body, &pr); err != nil || (pr.Active != nil && !*pr.Active) {
				continue
			}
			for _, c := range pr.Code {
				for _, cd := range c.Coding {
					if cd.System == SystemTeamRole {
						a.Roles = append(a.Roles, Role{ID: res.ID, Code: cd.Code, Organization: pr.Organization.Reference})
					}
				}
			}
		}
		if len(a.Roles) == 0 {
			return Actor{}, fmt.Errorf("%w: no active team role", ErrUnknown)
		}
		return a, nil
	})
}

// System resolves a hospital system's client id: a Device with that client
// identifier, owned by the facility's Organization, whose FINESS it carries.
func (r *Resolver) System(ctx context.Context, tenant, clientID string) (Actor, error) {
	return r.lookup("s\x00"+tenant+"\x00"+clientID, func() (Actor, error) {
		a, err := r.device(ctx, tenant, SystemClientID, clientID, false)
		a.System = clientID
		return a, err
	})
}

// Fingerprint is how a certificate is registered on a Device under
// SystemCertificate: the SHA-256 of its DER encoding, lower-case hex
// without colons (openssl x509 -noout -fingerprint -sha256 prints the same
// digits, upper-case with colons).
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// Certificate resolves the TLS client certificate of a hospital system by
// its fingerprint: an active Device carrying it as an identifier, owned by
// the facility's Organization, whose FINESS it carries. A certificate is
// pinned, not trusted by its subject: a renewed certificate is registered
// anew (a Device may carry several while they overlap), and removing the
// identifier, or making the Device inactive, revokes it within the cache's
// TTL.
func (r *Resolver) Certificate(ctx context.Context, tenant, fingerprint string) (Actor, error) {
	fingerprint = strings.ToLower(strings.ReplaceAll(fingerprint, ":", ""))
	return r.lookup("c\x00"+tenant+"\x00"+fingerprint, func() (Actor, error) {
		return r.device(ctx, tenant, SystemCertificate, fingerprint, true)
	})
}

// device finds the one Device identified by (system, value) and its owner's
// FINESS; activeOnly also refuses a Device whose status is not active.
func (r *Resolver) device(ctx context.Context, tenant, system, value string, activeOnly bool) (Actor, error) {
	page, err := r.Store.Search(ctx, store.Query{Tenant: tenant, Type: "Device", Count: 2,
		Params: []store.Param{tokenParam("identifier", system, value)}})
	if err != nil {
		return Actor{}, fmt.Errorf("find system: %w", err)
	}
	if len(page.Resources) != 1 {
		return Actor{}, ErrUnknown
	}
	dev := page.Resources[0]
	var d struct {
		Status     string `json:"status"`
		Identifier []struct{ System, Value string }
		Owner      struct {
			Reference string `json:"reference"`
		} `json:"owner"`
	}
	if err := json.Unmarshal(dev.Body, &d); err != nil || d.Owner.Reference == "" {
		return Actor{}, fmt.Errorf("%w: system has no owning organisation", ErrUnknown)
	}
	if activeOnly && d.Status != "active" {
		return Actor{}, fmt.Errorf("%w: system %s is %q, not active", ErrUnknown, dev.ID, d.Status)
	}
	a := Actor{Tenant: tenant, Device: "Device/" + dev.ID, Organization: d.Owner.Reference}
	for _, id := range d.Identifier {
		if id.System == SystemClientID {
			a.System = id.Value
		}
	}
	var orgID string
	if _, err := fmt.Sscanf(d.Owner.Reference, "Organization/%s", &orgID); err != nil {
		return Actor{}, fmt.Errorf("%w: bad owner reference", ErrUnknown)
	}
	org, err := r.Store.Read(ctx, "Organization", orgID)
	if err != nil {
		return Actor{}, fmt.Errorf("%w: owner %s: %v", ErrUnknown, d.Owner.Reference, err)
	}
	var o struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	_ = json.Unmarshal(org.Body, &o)
	for _, id := range o.Identifier {
		if id.System == SystemFINESS {
			a.FINESS = id.Value
		}
	}
	if a.FINESS == "" {
		return Actor{}, fmt.Errorf("%w: owner has no FINESS", ErrUnknown)
	}
	return a, nil
}
