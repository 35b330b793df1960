package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// ExtCapacity is the most open tasks a member takes at once
// (valueInteger on the PractitionerRole; absent or 0: no limit).
const ExtCapacity = "https://passerelle.health/fhir/StructureDefinition/capacity"

// Period is a span of time; a zero End is open.
type Period struct{ Start, End time.Time }

// Contains tells whether t falls in the period.
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.Start) && (p.End.IsZero() || t.Before(p.End))
}

// Member is one PractitionerRole of the directory with what assignment
// needs: who, which team role, where they work, how much they take, when
// they are away and how to reach them.
type Member struct {
	ID           string // PractitionerRole id
	Active       bool
	Practitioner string // "Practitioner/<id>"
	Code         string // team role
	Organization string // "Organization/<id>"
	RPPS         string
	Name         string // "Given FAMILY"
	Communes     []string
	PostalCodes  []string
	Capacity     int
	NotAvailable []Period
	Phone, Email string
	Login        string
}

// Ref is the member's reference, "PractitionerRole/<id>".
func (m Member) Ref() string { return "PractitionerRole/" + m.ID }

// Covers tells whether the member's territory holds the commune (INSEE
// code) or the postal code. A member with no territory covers nothing.
func (m Member) Covers(commune, postal string) bool {
	return (commune != "" && slices.Contains(m.Communes, commune)) ||
		(postal != "" && slices.Contains(m.PostalCodes, postal))
}

// AvailableAt tells whether the member is active and not declared away at t.
func (m Member) AvailableAt(t time.Time) bool {
	if !m.Active {
		return false
	}
	for _, p := range m.NotAvailable {
		if p.Contains(t) {
			return false
		}
	}
	return true
}

type fhirTelecom struct{ System, Value string }

type fhirRole struct {
	ID           string                     `json:"id"`
	Active       *bool                      `json:"active"`
	Practitioner struct{ Reference string } `json:"practitioner"`
	Organization struct{ Reference string } `json:"organization"`
	Code         []struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"code"`
	Telecom      []fhirTelecom `json:"telecom"`
	NotAvailable []struct {
		During struct{ Start, End string } `json:"during"`
	} `json:"notAvailable"`
	Extension []struct {
		URL          string `json:"url"`
		ValueInteger *int   `json:"valueInteger"`
		Extension    []struct {
			URL         string `json:"url"`
			ValueCode   string `json:"valueCode"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	} `json:"extension"`
}

type fhirPractitioner struct {
	Active     *bool                            `json:"active"`
	Identifier []struct{ System, Value string } `json:"identifier"`
	Name       []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Telecom []fhirTelecom `json:"telecom"`
}

// ParseMember reads a PractitionerRole and its Practitioner (nil when
// unknown) into a Member. A role without a team-role code is not a member.
func ParseMember(roleBody, practitionerBody []byte) (Member, bool, error) {
	var r fhirRole
	if err := json.Unmarshal(roleBody, &r); err != nil {
		return Member{}, false, fmt.Errorf("PractitionerRole: %w", err)
	}
	m := Member{ID: r.ID, Active: r.Active == nil || *r.Active, Practitioner: r.Practitioner.Reference, Organization: r.Organization.Reference}
	for _, c := range r.Code {
		for _, cd := range c.Coding {
			if cd.System == SystemTeamRole && m.Code == "" {
				m.Code = cd.Code
			}
		}
	}
	if m.Code == "" {
		return Member{}, false, nil
	}
	for _, e := range r.Extension {
		switch e.URL {
		case ExtCapacity:
			if e.ValueInteger != nil {
				m.Capacity = *e.ValueInteger
			}
		case ExtTerritory:
			for _, s := range e.Extension {
				switch s.URL {
				case "commune":
					m.Communes = append(m.Communes, s.ValueCode)
				case "postalCode":
					m.PostalCodes = append(m.PostalCodes, s.ValueString)
				}
			}
		}
	}
	for _, na := range r.NotAvailable {
		var p Period
		p.Start, _ = time.Parse(time.RFC3339, na.During.Start)
		if na.During.End != "" {
			p.End, _ = time.Parse(time.RFC3339, na.During.End)
		}
		m.NotAvailable = append(m.NotAvailable, p)
	}
	telecom := r.Telecom
	if practitionerBody != nil {
		var p fhirPractitioner
		if err := json.Unmarshal(practitionerBody, &p); err != nil {
			return Member{}, false, fmt.Errorf("Practitioner: %w", err)
		}
		if p.Active != nil && !*p.Active {
			m.Active = false
		}
		for _, id := range p.Identifier {
			switch id.System {
			case SystemRPPS:
				m.RPPS = id.Value
			case SystemLogin:
				m.Login = id.Value
			}
		}
		if len(p.Name) > 0 {
			m.Name = strings.TrimSpace(strings.Join(p.Name[0].Given, " ") + " " + p.Name[0].Family)
		}
		telecom = append(telecom, p.Telecom...)
	}
	for _, t := range telecom {
		switch {
		case t.System == "phone" && m.Phone == "":
			m.Phone = t.Value
		case t.System == "email" && m.Email == "":
			m.Email = t.Value
		}
	}
	return m, true, nil
}

// LoadMembers reads every PractitionerRole with a team role of the tenant,
// active or not, with its Practitioner, sorted by id.
func LoadMembers(ctx context.Context, st store.Store, tenant string) ([]Member, error) {
	pracs := map[string][]byte{}
	if err := each(ctx, st, tenant, "Practitioner", func(r store.Resource) {
		pracs["Practitioner/"+r.ID] = r.Body
	}); err != nil {
		return nil, err
	}
	var out []Member
	var perr error
	if err := each(ctx, st, tenant, "PractitionerRole", func(r store.Resource) {
		var pb []byte
		var head struct {
			Practitioner struct{ Reference string } `json:"practitioner"`
		}
		if json.Unmarshal(r.Body, &head) == nil {
			pb = pracs[head.Practitioner.Reference]
		}
		m, ok, err := ParseMember(r.Body, pb)
		if err != nil && perr == nil {
			perr = fmt.Errorf("PractitionerRole/%s: %w", r.ID, err)
		}
		if ok {
			out = append(out, m)
		}
	}); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// each calls fn for every current resource of a type, page by page.
func each(ctx context.Context, st store.Store, tenant, typ string, fn func(store.Resource)) error {
	q := store.Query{Tenant: tenant, Type: typ, Count: 1000}
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return fmt.Errorf("read %s: %w", typ, err)
		}
		for _, r := range page.Resources {
			fn(r)
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}
