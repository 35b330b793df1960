package fhirapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
)

// metadata serves the CapabilityStatement, generated from the search
// registry and the registered operations: it lists exactly what the server
// does.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	type param struct {
		Name       string `json:"name"`
		Definition string `json:"definition,omitempty"`
		Type       string `json:"type"`
		Doc        string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type operation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	type resource struct {
		Type              string        `json:"type"`
		Interaction       []interaction `json:"interaction"`
		Versioning        string        `json:"versioning"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		SearchParam       []param       `json:"searchParam,omitempty"`
	}
	var resources []resource
	for _, typ := range a.Search.Types() {
		if typ == "Resource" {
			continue
		}
		rs := resource{Type: typ, Versioning: "versioned-update", ReadHistory: true,
			Interaction: []interaction{{"read"}, {"vread"}, {"history-instance"}, {"search-type"}}}
		if access.ClassOf(typ) != access.Clinical {
			rs.Interaction = append(rs.Interaction, interaction{"create"}, interaction{"update"})
			rs.UpdateCreate = true
		}
		for _, d := range a.Search.Params(typ) {
			// AuditEvents come from the audit trail, searched by patient.
			if typ == "AuditEvent" && d.Name != "patient" {
				continue
			}
			rs.SearchParam = append(rs.SearchParam, param{Name: d.Name, Definition: d.URL, Type: string(d.Kind)})
		}
		if typ == "AuditEvent" {
			rs.Interaction = []interaction{{"read"}, {"search-type"}}
			rs.Versioning, rs.ReadHistory = "no-version", false
		}
		resources = append(resources, rs)
	}
	var ops []operation
	for name, def := range a.Operations {
		ops = append(ops, operation{Name: name, Definition: def})
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	type ext struct {
		URL      string `json:"url"`
		ValueURI string `json:"valueUri,omitempty"`
	}
	security := map[string]any{
		"cors": false,
		"service": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}}}},
		"description": "OpenID Connect bearer tokens (authorization code with PKCE for people, client credentials for hospital systems).",
	}
	if a.TokenURL != "" {
		security["extension"] = []any{map[string]any{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []ext{{URL: "token", ValueURI: a.TokenURL}, {URL: "authorize", ValueURI: a.AuthorizeURL}},
		}}
	}
	rest := map[string]any{"mode": "server", "security": security, "resource": resources}
	if len(ops) > 0 {
		rest["operation"] = ops
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"kind":         "instance",
		"software":     map[string]any{"name": "Passerelle", "version": a.Version},
		"implementation": map[string]any{"description": "Passerelle — parcours ville-hôpital",
			"url": a.BaseURL},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json"},
		"rest":        []any{rest},
	}
	w.Header().Set("Content-Type", ContentType)
	_ = json.NewEncoder(w).Encode(cs)
}
