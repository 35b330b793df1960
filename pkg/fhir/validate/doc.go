// Package validate checks FHIR R4 JSON against the profiles of a FHIR
// package (package profile), before anything is stored: intake runs every
// $process-message body through Validator.ValidateBundle and answers an
// OperationOutcome built from the issues when there is an error.
//
// Everything the validator enforces comes from the package's data — the
// generated snapshots, value sets, code systems, message definitions and
// naming systems — so that changing a cardinality, a binding or an
// identifier system needs no Go change (see TestDataDriven). The Go side
// holds only what FHIR fixes for good: the JSON representation, the
// formats of the primitive types, the key algorithms of French identifiers
// (package ident), and the small FHIRPath subset described in fhirpath.go.
//
// # What is checked
//
//   - JSON: well-formed UTF-8 JSON, no repeated property, no null (except
//     as a placeholder in a primitive array whose _name array has the
//     extensions), no empty array, arrays exactly where the element repeats
//     in FHIR (its base max is not 1), objects where the type is complex.
//   - Unknown elements are errors: a property neither FHIR R4 nor the
//     profile defines at that place, or a choice type the profile removed
//     (valueString where only valueCoding is allowed). Unknown extensions
//     are warnings (FHIR lets receivers ignore them), unknown modifier
//     extensions errors.
//   - Primitive formats: boolean, integer (32 bits), positiveInt,
//     unsignedInt, decimal (JSON numbers), string and markdown (non-empty,
//     no control characters), code, id, uri, url, canonical, oid, uuid,
//     date and dateTime (real calendar days; a time needs seconds and a
//     zone), instant, time, base64Binary, xhtml (well-formed div, no
//     active content).
//   - Cardinality (min, max) of every element, slices included.
//   - Types: choice elements by property name; Reference targets (the
//     resource a reference resolves to, or the Type of a Type/id
//     reference, must be one the element allows); embedded resources.
//   - fixed[x] (exact) and pattern[x] (contained) values.
//   - Required bindings, against the value set's expansion; a value set
//     including a code system the package cannot enumerate (BCP 13 media
//     types, ISO 4217…) accepts any code of that system. In addition a
//     Coding whose system is a complete code system of the package must
//     use one of its codes, whatever the binding.
//   - Slicing with value and pattern discriminators on a path of child
//     names (Identifier.system, Extension.url) and type discriminators
//     (Bundle.entry by resource type); rules closed, open, openAtEnd;
//     ordered.
//   - Invariants of severity error written in the FHIRPath subset (see
//     fhirpath.go); the others are skipped, never half-evaluated.
//   - Identifier check keys, by Identifier.system: the package's
//     NamingSystem resources name, with the identifier-check extension, the
//     algorithm of each system (INS-NIR, NIA, test and demo INS, RPPS,
//     idNat_PS, FINESS).
//   - In a Bundle: fullUrl unique (bdl-7) and urn:uuid: well formed;
//     references of the form urn:uuid:, urn:oid: or Type/id must designate
//     an entry (by fullUrl, or by type and id); #id must designate a
//     contained resource. Absolute URLs to outside the Bundle are allowed.
//
// Not checked: invariants outside the subset, extensible and preferred
// bindings, extension contexts, contained resources (refused: Passerelle
// ships no definition for them), whether a test or demo INS is acceptable
// (a deployment setting, for intake to decide).
//
// # Which profile
//
// ValidateBundle validates the Bundle against passerelle-message-bundle.
// Each entry's resource is validated against the profile that
// passerelle-message-bundle lists for its type on Bundle.entry.resource
// (Patient → passerelle-patient, Encounter → passerelle-encounter…), a
// type it does not list being an error — except the MessageHeader's focus:
// the MessageDefinition of the event (eventCoding) gives the profile of
// each focus type (discharge-notification → passerelle-encounter-discharge,
// which requires period.end), and how many focus resources the event
// takes. That is how event-specific rules are expressed: as data, one
// profile per event where the rules differ. A profile named in a
// resource's meta.profile that the package holds is checked as well;
// an unknown one gives an information issue.
//
// ValidateResource validates one resource against the profile given, or
// those of its meta.profile the package holds.
//
// # Issues
//
// Every issue found is reported (up to 1,000), in document order,
// reference and message rules last. Issue.Expression is a FHIRPath to the element:
// Bundle.entry[2].resource.subject, with [n] on every repeating element
// and .ofType(Type) on a choice element (Bundle.entry[0].resource.
// event.ofType(Coding)). Issue.Code is a FHIR issue type:
//
//	structure     invalid JSON, unknown element, wrong JSON type, array
//	              or not, repeated property, too many occurrences,
//	              a slice out of place, a resource type not allowed
//	required      a required element or slice missing
//	value         a primitive's format, a fixed or pattern value, an
//	              identifier's check key, a malformed reference
//	code-invalid  a code outside its required value set or its code system
//	invariant     a failed invariant, a duplicate fullUrl, a message rule
//	not-found     a reference that does not resolve in the Bundle
//	invalid       a reference to a resource of the wrong type
//	extension     an unknown extension (warning), modifier (error)
//	not-supported a resource the package has no definition for
//	too-costly    more than 1,000 issues: the report stops there
//
// The validator never panics on any input: a bug would surface as one
// issue of code exception.
package validate
