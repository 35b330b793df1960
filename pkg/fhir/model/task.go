package model

import "encoding/json"

// SystemTeamRole is the code system of the roles in a care team
// (directory.SystemTeamRole): a Task's performerType, a CareTeam
// participant's role.
const SystemTeamRole = "https://passerelle.health/fhir/CodeSystem/team-role"

// Task is a FHIR R4 Task.
type Task struct {
	ResourceType          string            `json:"resourceType"`
	ID                    string            `json:"id"`
	Meta                  *Meta             `json:"meta"`
	Extension             []Extension       `json:"extension"`
	Identifier            []Identifier      `json:"identifier"`
	InstantiatesCanonical string            `json:"instantiatesCanonical"`
	BasedOn               []Reference       `json:"basedOn"`
	GroupIdentifier       *Identifier       `json:"groupIdentifier"`
	PartOf                []Reference       `json:"partOf"`
	Status                string            `json:"status"`
	StatusReason          *CodeableConcept  `json:"statusReason"`
	BusinessStatus        *CodeableConcept  `json:"businessStatus"`
	Intent                string            `json:"intent"`
	Priority              string            `json:"priority"`
	Code                  *CodeableConcept  `json:"code"`
	Description           string            `json:"description"`
	Focus                 *Reference        `json:"focus"`
	For                   *Reference        `json:"for"`
	Encounter             *Reference        `json:"encounter"`
	ExecutionPeriod       *Period           `json:"executionPeriod"`
	AuthoredOn            string            `json:"authoredOn"`
	LastModified          string            `json:"lastModified"`
	Requester             *Reference        `json:"requester"`
	PerformerType         []CodeableConcept `json:"performerType"`
	Owner                 *Reference        `json:"owner"`
	Location              *Reference        `json:"location"`
	ReasonCode            *CodeableConcept  `json:"reasonCode"`
	ReasonReference       *Reference        `json:"reasonReference"`
	Note                  []Annotation      `json:"note"`
	RelevantHistory       []Reference       `json:"relevantHistory"`
	Restriction           *TaskRestriction  `json:"restriction"`
	Input                 []TaskParameter   `json:"input"`
	Output                []TaskParameter   `json:"output"`
	rest                  rest
}

// UnmarshalJSON decodes a Task, keeping what it does not name.
func (t *Task) UnmarshalJSON(b []byte) (err error) { t.rest, err = decodeObject(b, t); return }

// MarshalJSON encodes a Task with what it did not name.
func (t Task) MarshalJSON() ([]byte, error) { return encodeObject(&t, t.rest) }

// GetExtension returns the task's first extension with url, nil when none.
// (The method cannot be Extension: that is the element.)
func (t *Task) GetExtension(url string) *Extension { return findExtension(t.Extension, url) }

// SetExtension replaces the task's extension with e's url, or adds e.
func (t *Task) SetExtension(e Extension) { setExtension(&t.Extension, e) }

// Role is the team role the task asks for: its performerType in the
// team-role code system ("" for a task without role, such as the
// patient's own).
func (t *Task) Role() string { return FirstCode(t.PerformerType, SystemTeamRole) }

// Action is the task's code in system ("" when none).
func (t *Task) Action(system string) string { return t.Code.Code(system) }

// Title is what the task says to do: its description, else its code's
// display.
func (t *Task) Title() string {
	if t.Description != "" {
		return t.Description
	}
	return t.Code.Display()
}

// TaskRestriction is Task.restriction.
type TaskRestriction struct {
	Repetitions *int64      `json:"repetitions"`
	Period      *Period     `json:"period"`
	Recipient   []Reference `json:"recipient"`
	rest        rest
}

// UnmarshalJSON decodes a TaskRestriction, keeping what it does not name.
func (r *TaskRestriction) UnmarshalJSON(b []byte) (err error) {
	r.rest, err = decodeObject(b, r)
	return
}

// MarshalJSON encodes a TaskRestriction with what it did not name.
func (r TaskRestriction) MarshalJSON() ([]byte, error) { return encodeObject(&r, r.rest) }

// TaskParameter is a Task.input or a Task.output: a type and one value[x].
// The kinds Passerelle uses are named, each a pointer left out when nil;
// any other kind is kept as it came.
type TaskParameter struct {
	Type                 *CodeableConcept `json:"type"`
	ValueBoolean         *bool            `json:"valueBoolean"`
	ValueInteger         *int64           `json:"valueInteger"`
	ValueDecimal         *json.Number     `json:"valueDecimal"`
	ValueString          *string          `json:"valueString"`
	ValueCode            *string          `json:"valueCode"`
	ValueCanonical       *string          `json:"valueCanonical"`
	ValueDateTime        *string          `json:"valueDateTime"`
	ValueReference       *Reference       `json:"valueReference"`
	ValueCoding          *Coding          `json:"valueCoding"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept"`
	ValueQuantity        *Quantity        `json:"valueQuantity"`
	ValuePeriod          *Period          `json:"valuePeriod"`
	rest                 rest
}

// TaskInput is a Task.input.
type TaskInput = TaskParameter

// TaskOutput is a Task.output.
type TaskOutput = TaskParameter

// UnmarshalJSON decodes a TaskParameter, keeping what it does not name.
func (p *TaskParameter) UnmarshalJSON(b []byte) (err error) { p.rest, err = decodeObject(b, p); return }

// MarshalJSON encodes a TaskParameter with what it did not name.
func (p TaskParameter) MarshalJSON() ([]byte, error) { return encodeObject(&p, p.rest) }
