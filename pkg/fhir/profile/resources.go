package profile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The conformance resources the registry holds, reduced to what validation
// and snapshot generation read. They decode from FHIR R4 JSON.

// StructureDefinition is a profile, a datatype or an extension definition.
type StructureDefinition struct {
	URL            string `json:"url"`
	ID             string `json:"id"`
	Version        string `json:"version"`
	Name           string `json:"name"`
	Kind           string `json:"kind"` // primitive-type, complex-type, resource, logical
	Abstract       bool   `json:"abstract"`
	Type           string `json:"type"`
	BaseDefinition string `json:"baseDefinition"`
	Derivation     string `json:"derivation"` // specialization or constraint
	Snapshot       struct {
		Element []*ElementDefinition `json:"element"`
	} `json:"snapshot"`
	Differential struct {
		Element json.RawMessage `json:"element"`
	} `json:"differential"`
}

// ElementDefinition is one element of a snapshot.
type ElementDefinition struct {
	ID               string
	Path             string
	SliceName        string
	Min              int
	Max              string
	Base             ElementBase
	ContentReference string
	Type             []TypeRef
	// Fixed and Pattern hold fixed[x] and pattern[x], nil when absent.
	Fixed, Pattern *TypedValue
	Slicing        *Slicing
	Binding        *Binding
	Constraint     []Constraint
	MaxLength      int
	IsModifier     bool
}

// ElementBase is ElementDefinition.base: the element's cardinality in the
// definition that introduced it. Its max decides whether JSON carries the
// element as an array, whatever a profile later narrows it to.
type ElementBase struct {
	Path string `json:"path"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
}

// TypedValue is the value of a choice element such as fixed[x]: the type
// suffix of the JSON property ("Uri", "CodeableConcept") and the raw JSON.
type TypedValue struct {
	Type string
	JSON json.RawMessage
}

// TypeRef is ElementDefinition.type.
type TypeRef struct {
	Code          string
	Profile       []string
	TargetProfile []string
	// FHIRType is the structuredefinition-fhir-type extension, which R4 puts
	// on the System.* type codes of id, url and value elements to name the
	// FHIR type (string, uri, id…).
	FHIRType string
}

// Slicing is ElementDefinition.slicing.
type Slicing struct {
	Discriminator []Discriminator `json:"discriminator"`
	Ordered       bool            `json:"ordered"`
	Rules         string          `json:"rules"` // closed, open, openAtEnd
}

// Discriminator is one ElementDefinition.slicing.discriminator.
type Discriminator struct {
	Type string `json:"type"` // value, pattern, type, exists, profile
	Path string `json:"path"`
}

// Binding is ElementDefinition.binding.
type Binding struct {
	Strength string `json:"strength"`
	ValueSet string `json:"valueSet"`
}

// Constraint is an ElementDefinition.constraint (an invariant). HumanFR is
// the French translation of Human when the definition carries one (the
// translation extension on _human).
type Constraint struct {
	Key        string
	Severity   string
	Human      string
	HumanFR    string
	Expression string
	Source     string
}

// MaxInt returns the element's max as an int, -1 for "*".
func (e *ElementDefinition) MaxInt() int { return parseMax(e.Max) }

// IsArray reports whether the element repeats in JSON: its base max is not 1.
func (e *ElementDefinition) IsArray() bool {
	m := e.Base.Max
	if m == "" {
		m = e.Max
	}
	return m != "1" && m != "0"
}

func parseMax(s string) int {
	if s == "*" || s == "" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

const (
	extFHIRType    = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	extTranslation = "http://hl7.org/fhir/StructureDefinition/translation"
)

type extension struct {
	URL         string      `json:"url"`
	ValueURL    string      `json:"valueUrl"`
	ValueURI    string      `json:"valueUri"`
	ValueCode   string      `json:"valueCode"`
	ValueString string      `json:"valueString"`
	Extension   []extension `json:"extension"`
}

// UnmarshalJSON reads a TypeRef and its fhir-type extension.
func (t *TypeRef) UnmarshalJSON(b []byte) error {
	var raw struct {
		Code          string      `json:"code"`
		Profile       []string    `json:"profile"`
		TargetProfile []string    `json:"targetProfile"`
		Extension     []extension `json:"extension"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*t = TypeRef{Code: raw.Code, Profile: raw.Profile, TargetProfile: raw.TargetProfile}
	for _, x := range raw.Extension {
		if x.URL == extFHIRType {
			t.FHIRType = x.ValueURL
			if t.FHIRType == "" {
				t.FHIRType = x.ValueURI
			}
		}
	}
	return nil
}

// UnmarshalJSON reads a Constraint with the French translation of human.
func (c *Constraint) UnmarshalJSON(b []byte) error {
	var raw struct {
		Key      string `json:"key"`
		Severity string `json:"severity"`
		Human    string `json:"human"`
		HumanExt *struct {
			Extension []extension `json:"extension"`
		} `json:"_human"`
		Expression string `json:"expression"`
		Source     string `json:"source"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*c = Constraint{Key: raw.Key, Severity: raw.Severity, Human: raw.Human, Expression: raw.Expression, Source: raw.Source}
	if raw.HumanExt != nil {
		for _, x := range raw.HumanExt.Extension {
			if x.URL != extTranslation {
				continue
			}
			var lang, content string
			for _, p := range x.Extension {
				switch p.URL {
				case "lang":
					lang = p.ValueCode
				case "content":
					content = p.ValueString
				}
			}
			if strings.HasPrefix(lang, "fr") {
				c.HumanFR = content
			}
		}
	}
	return nil
}

// UnmarshalJSON reads an ElementDefinition, including its fixed[x] and
// pattern[x] properties, whose names depend on their type.
func (e *ElementDefinition) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID               string       `json:"id"`
		Path             string       `json:"path"`
		SliceName        string       `json:"sliceName"`
		Min              int          `json:"min"`
		Max              string       `json:"max"`
		Base             ElementBase  `json:"base"`
		ContentReference string       `json:"contentReference"`
		Type             []TypeRef    `json:"type"`
		Slicing          *Slicing     `json:"slicing"`
		Binding          *Binding     `json:"binding"`
		Constraint       []Constraint `json:"constraint"`
		MaxLength        int          `json:"maxLength"`
		IsModifier       bool         `json:"isModifier"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*e = ElementDefinition{
		ID: raw.ID, Path: raw.Path, SliceName: raw.SliceName, Min: raw.Min, Max: raw.Max,
		Base: raw.Base, ContentReference: raw.ContentReference, Type: raw.Type,
		Slicing: raw.Slicing, Binding: raw.Binding, Constraint: raw.Constraint,
		MaxLength: raw.MaxLength, IsModifier: raw.IsModifier,
	}
	if e.ID == "" {
		e.ID = e.Path
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, v := range all {
		switch {
		case strings.HasPrefix(k, "fixed") && len(k) > len("fixed"):
			if e.Fixed != nil {
				return fmt.Errorf("element %s: several fixed[x]", e.ID)
			}
			e.Fixed = &TypedValue{Type: k[len("fixed"):], JSON: v}
		case strings.HasPrefix(k, "pattern") && len(k) > len("pattern"):
			if e.Pattern != nil {
				return fmt.Errorf("element %s: several pattern[x]", e.ID)
			}
			e.Pattern = &TypedValue{Type: k[len("pattern"):], JSON: v}
		}
	}
	return nil
}

// ValueSet is a value set definition; Passerelle expands its compose.
type ValueSet struct {
	URL     string `json:"url"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Title   string `json:"title"`
	Compose *struct {
		Include []ConceptSet `json:"include"`
		Exclude []ConceptSet `json:"exclude"`
	} `json:"compose"`
}

// ConceptSet is ValueSet.compose.include or exclude.
type ConceptSet struct {
	System  string `json:"system"`
	Version string `json:"version"`
	Concept []struct {
		Code    string `json:"code"`
		Display string `json:"display"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
	ValueSet []string `json:"valueSet"`
}

// CodeSystem is a code system with its concepts (nested ones included).
type CodeSystem struct {
	URL           string    `json:"url"`
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Content       string    `json:"content"` // not-present, example, fragment, complete, supplement
	CaseSensitive bool      `json:"caseSensitive"`
	Concept       []Concept `json:"concept"`
}

// Concept is a CodeSystem.concept.
type Concept struct {
	Code    string    `json:"code"`
	Display string    `json:"display"`
	Concept []Concept `json:"concept"`
}

// MessageDefinition says which focus an event takes and against which
// profile it is validated.
type MessageDefinition struct {
	URL         string `json:"url"`
	ID          string `json:"id"`
	EventCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	} `json:"eventCoding"`
	Focus []MessageFocus `json:"focus"`
}

// MessageFocus is a MessageDefinition.focus.
type MessageFocus struct {
	Code    string `json:"code"`
	Profile string `json:"profile"`
	Min     int    `json:"min"`
	Max     string `json:"max"`
}

// MaxInt returns the focus's max as an int, -1 for "*" or absent.
func (f MessageFocus) MaxInt() int { return parseMax(f.Max) }

// NamingSystem is an identifier system; Check names its key algorithm
// (extension identifier-check: ins, rpps, idnps, finess), "" for none.
type NamingSystem struct {
	ID       string
	Name     string
	Check    string
	UniqueID []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
}

// ExtIdentifierCheck is the extension naming a NamingSystem's check.
const ExtIdentifierCheck = "https://passerelle.health/fhir/StructureDefinition/identifier-check"

// UnmarshalJSON reads a NamingSystem and its identifier-check extension.
func (n *NamingSystem) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID        string      `json:"id"`
		Name      string      `json:"name"`
		Extension []extension `json:"extension"`
		UniqueID  []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"uniqueId"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*n = NamingSystem{ID: raw.ID, Name: raw.Name, UniqueID: raw.UniqueID}
	for _, x := range raw.Extension {
		if x.URL == ExtIdentifierCheck {
			n.Check = x.ValueCode
		}
	}
	return nil
}

// Systems returns the Identifier.system values of the naming system: its
// uri unique ids, and its oids as urn:oid: URIs.
func (n *NamingSystem) Systems() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range n.UniqueID {
		v := u.Value
		if u.Type == "oid" {
			v = "urn:oid:" + v
		} else if u.Type != "uri" {
			continue
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
