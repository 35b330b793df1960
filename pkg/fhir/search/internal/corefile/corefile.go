// Package corefile is the layout of core_params.json: the generator
// (internal/gen) writes it and package search reads it, so both agree on
// one definition.
package corefile

// File is the whole file.
type File struct {
	Comment     string    `json:"_comment"`
	FHIRVersion string    `json:"fhirVersion"`
	Params      []Def     `json:"params"`
	Dropped     []Dropped `json:"dropped"`
}

// Def is one kept search parameter.
type Def struct {
	Resource    string   `json:"resource"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	URL         string   `json:"url"`
	Expression  string   `json:"expression"`
	Targets     []string `json:"targets,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Dropped is a search parameter left out, with the reason.
type Dropped struct {
	Resource string `json:"resource"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	URL      string `json:"url"`
	Reason   string `json:"reason"`
}
