// Package model holds Go types for the FHIR R4 resources the services edit
// most: Task, EpisodeOfCare, CareTeam and Observation, with the datatypes
// they need (Reference, CodeableConcept, Period, Extension...).
//
// The types are written by hand, not generated. The generated models of
// github.com/samply/golang-fhir-models declare the value[x] fields of backbone elements (Task.input,
// Task.output, Extension) as plain values without omitempty: a Task with
// one output then encodes every value[x] of it, which is not valid FHIR.
// Here every value[x] is a pointer left out when nil, and a type names only
// the elements Passerelle reads or writes.
//
// Nothing is lost on a round trip: each type keeps the elements it does not
// name (a profile's extension on a primitive, an element of a later FHIR
// version, a datatype kept opaque) as raw JSON when it decodes, and writes
// them back when it encodes. Decimals keep their text (json.Number). An
// empty list decodes to an empty slice and encodes again as []; only empty
// strings and nulls, which FHIR forbids, are dropped.
//
// The rest of the code still edits resources as decoded JSON
// (internal/fhirjson); docs/architecture.md, "FHIR in Go", says which paths
// use which.
package model
