// Package profile loads Passerelle's FHIR package (fhir-profiles/) into a
// Registry of StructureDefinitions, ValueSets, CodeSystems,
// MessageDefinitions and NamingSystems by canonical URL, and generates the
// package's snapshots from its differentials and the FHIR R4 core
// definitions.
//
// # Loading
//
// Load takes an fs.FS: the package built into the binary
// (fhirprofiles.FS()), or os.DirFS of PASSERELLE_PROFILES_DIR, which
// overrides it, so that a CPTS can adjust a profile or a value set without
// a new binary. Validation reads the generated snapshots only; Load refuses
// a package whose differentials no longer match their snapshots.
//
// # Snapshot generation
//
// Generate (run by go generate, internal/gen) starts from the base's
// snapshot (a core definition, or another profile of the package, generated
// first) and applies each differential element in order, matched by its
// element id:
//
//   - cardinality: min may only rise and max only fall;
//   - type: a subset of the base's types; Resource may narrow to resource
//     types; targetProfile to resource types the base allows (core or
//     package profiles); profile on Extension and datatypes;
//   - fixed[x] and pattern[x] (not replacing a different base value);
//   - binding (a required binding cannot be weakened);
//   - constraint (added to the base's; the validator evaluates those written
//     in a small FHIRPath subset, see package validate);
//   - slicing and slices: a slice is a copy of the sliced element and the
//     children it has so far, inserted after the element's group; constrain
//     the sliced element's children before declaring slices, as FHIR
//     differentials are ordered anyway;
//   - children of an element the base does not unfold (period.end,
//     serviceProvider.identifier.system, a slice's url) are unfolded from
//     the element's datatype, its single profile, or the element its
//     contentReference names;
//   - other members (short, definition, mustSupport…) replace the base's.
//
// Not supported: re-slicing, type slices written as valueQuantity paths
// (constrain value[x] with a single type instead), and differentials
// without element ids when they slice.
//
// Event-specific rules are not written as conditions in a profile, which
// cardinalities cannot express, but as profiles: passerelle-encounter
// holds what every message needs of a stay, passerelle-encounter-discharge
// adds period.end 1..1 and a required discharge disposition, and
// passerelle-encounter-death requires disposition exp. Each event's
// MessageDefinition names the profile its focus must meet.
//
// The core snapshots are checked against their own differentials, which
// win; the generated snapshots/README.md lists every correction and every
// binding the shipped terminology cannot check.
package profile

//go:generate go run ./internal/gen -core ../../../../shared/data/fhir-r4 -pkg ../../../fhir-profiles
