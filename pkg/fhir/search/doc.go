// Package search is Passerelle's FHIR search layer between the API and the
// store: the registry of search parameters, the extraction of a resource's
// index entries, the parsing of search query strings into store.Query
// parameters, and the one definition of how an index entry matches a search
// value, which every store backend implements.
//
// # Registry
//
// Default holds the FHIR R4 core SearchParameters of the resource types
// Passerelle stores, generated into core_params.json from the official
// definitions bundle (see internal/gen; the file also lists every parameter
// left out, with the reason). Only token, reference, date, string and uri
// parameters are kept; number, quantity, composite and special ones are not,
// nor those whose FHIRPath expression uses more than the subset
// internal/fhirpath evaluates (paths, unions, parentheses, "as" casts on
// choice elements, ofType, where(resolve() is T), where(field = 'x')).
// _id and _lastUpdated apply to every type. Profile packages add their own
// SearchParameter resources with Registry.Add.
//
// # Queries
//
// ParseQuery is strict: an unknown parameter, an unsupported modifier or
// control parameter, or a malformed value is an *Error naming the parameter
// and wrapping store.ErrInvalid (HTTP 400), never ignored as FHIR would
// allow. The paging cursor travels as _cursor. Comma-separated values are
// ORed; a repeated parameter is ANDed.
//
// # Matching
//
// A resource matches a store.Param when at least one of its entries for that
// parameter (same name) matches at least one of the Param's values; the
// Params of a query are ANDed. "Matches" is Match, that is, for a value v
// and an entry e of the same kind:
//
//   - token: if v.System is nil, e.Code = v.Code (any system). If v.System
//     points to "", e.System = "" and e.Code = v.Code (|code: no system).
//     Otherwise e.System = *v.System and, unless v.Code is "" (system|: any
//     code of the system), e.Code = v.Code. Comparisons are exact and case
//     sensitive.
//   - reference: e.Ref = v.Ref, both "Type/id" (ParseQuery has already
//     turned bare ids and absolute URLs into that form).
//   - string: if v.Exact, e.Raw = v.Text (the value as written, case and
//     accents included). Otherwise e.Text starts with v.Text; both are
//     already normalised (Normalize: lower case, no accents, single spaces),
//     so a backend compares bytes: e.text LIKE v.text || '%' with LIKE's
//     wildcards in v.text escaped, or a range text >= v AND text < v+U+FFFF.
//   - uri: e.Text = v.Text, exact.
//   - date: see below.
//
// Dates are half-open intervals in UTC: the entry [e.Lo, e.Hi) and the value
// [v.Lo, v.Hi), each covering its value's precision ("2025-03-14" is that
// whole day in Europe/Paris; a Period runs from its start's first instant to
// its end's last, an open end being FarPast or FarFuture). By v.Prefix:
//
//	eq or "": v.Lo <= e.Lo AND e.Hi <= v.Hi   the entry lies within the value
//	ne:       NOT (v.Lo <= e.Lo AND e.Hi <= v.Hi)
//	gt:       e.Hi > v.Hi                     the entry reaches past the value
//	lt:       e.Lo < v.Lo                     the entry starts before the value
//	ge:       e.Hi > v.Lo                     the entry reaches the value or later
//	le:       e.Lo < v.Hi                     the entry starts before the value ends
//	sa:       e.Lo >= v.Hi                    starts after the value, no overlap
//	eb:       e.Hi <= v.Lo                    ends before the value, no overlap
//	ap:       e.Lo < v.Hi AND e.Hi > v.Lo     overlap
//
// For ap, ParseQuery has already widened [v.Lo, v.Hi) by a tenth of its width
// on each side, at least a day, so backends only test overlap. ge and le are
// the overlap readings of FHIR's "the range above (below) the search value
// intersects the target, or the search value contains it": with ge, an entry
// overlapping the day searched matches even if it starts the day before. gt
// and lt follow FHIR literally.
//
// With several entries for one parameter (two identifiers, a name's given
// and family), one matching entry is enough, for ne as for the other
// prefixes: "ne2025" on a resource with dates in 2024 and 2025 matches.
//
// # Entries
//
// Extract reads, per parameter, the values its expression finds: tokens
// from code, string, id and boolean primitives, Coding, each Coding of a
// CodeableConcept, Identifier and ContactPoint; references from Reference
// and canonical strings (kept when they end in Type/id: "Patient/1",
// "https://host/fhir/Patient/1", "https://host/Questionnaire/q|2"); strings
// from string primitives and the parts of HumanName and Address; dates from
// date, dateTime, instant and Period (Timing is skipped); uris from uri,
// url and canonical strings. A date or dateTime without a zone is read in
// Europe/Paris.
package search

//go:generate go run ./internal/gen -in ../../../../shared/data/fhir-r4/search-parameters.json -out core_params.json
