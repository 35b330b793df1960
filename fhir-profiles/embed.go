// Package fhirprofiles carries Passerelle's FHIR package — profiles,
// terminology, message definitions, identifier systems and their generated
// snapshots — inside the binary, so that a Passerelle binary validates
// with the package it was built and tested with. PASSERELLE_PROFILES_DIR
// replaces it at run time (package profile loads either).
package fhirprofiles

import (
	"embed"
	"io/fs"
)

// The hand-written differentials travel with their snapshots: the loader
// checks that each snapshot was generated from the differential beside it.
//
//go:embed package.json StructureDefinition ValueSet CodeSystem MessageDefinition NamingSystem PlanDefinition Measure snapshots
var files embed.FS

// FS returns the package's files, package.json at the root.
func FS() fs.FS { return files }
