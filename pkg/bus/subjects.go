package bus

import "strings"

// Streams and the subjects they hold. Every subject Passerelle publishes on is
// built here, so that a consumer subscribes to where its resources travel.
const (
	// StreamFHIR holds resource state changes: fhir.<tenant>.<Type>.<op>.
	StreamFHIR = "FHIR"
	// StreamInbound holds hospital messages as received: inbound.<tenant>.<kind>.
	StreamInbound = "INBOUND"
	// StreamDLQ holds dead letters: dlq.<durable>.
	StreamDLQ = "DLQ"
)

// StreamSubjects maps each stream to its subject filter.
var StreamSubjects = map[string]string{
	StreamFHIR:    "fhir.>",
	StreamInbound: "inbound.>",
	StreamDLQ:     "dlq.>",
}

// Operations on a resource.
const (
	OpCreated = "created"
	OpUpdated = "updated"
	OpDeleted = "deleted"
)

// ResourceSubject is the subject of a state change of a resource type:
// fhir.<tenant>.<Type>.<op>. Use "*" for any part to build a filter.
func ResourceSubject(tenant, resourceType, op string) string {
	return "fhir." + token(tenant) + "." + resourceType + "." + op
}

// InboundSubject is the subject of a hospital message: inbound.<tenant>.<kind>.
func InboundSubject(tenant, kind string) string {
	return "inbound." + token(tenant) + "." + kind
}

// DeadLetterSubject is where a durable consumer's dead letters go.
func DeadLetterSubject(durable string) string { return "dlq." + token(durable) }

// token keeps a subject part free of the separators NATS gives meaning to.
func token(s string) string {
	if s == "*" || s == ">" {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

// published lists the resource types whose changes are published as events:
// those some service reacts to (docs/architecture.md, "Events": events exist for
// consumers). Directory, definitions and audit records are not published.
var published = map[string]bool{
	"Patient": true, "Encounter": true, "EpisodeOfCare": true, "CarePlan": true, "CareTeam": true,
	"Task": true, "Observation": true, "QuestionnaireResponse": true, "Flag": true, "DetectedIssue": true,
	"Consent": true, "Condition": true,
}

// Published tells whether changes of a resource type are published.
func Published(resourceType string) bool { return published[resourceType] }
