package fhir

// Kind says what sort of failure an Error is, in the domain's words. It is
// all an edge needs to answer: the HTTP edge maps it to a status
// (fhirapi.Status), the MLLP edge to an acknowledgment code (intake's ACK
// table), each in one table (docs/architecture.md, "Errors"). Domain code
// picks a Kind, never a status or an ACK code.
type Kind string

// The kinds. The set is closed: an edge answers every one of them, and a
// new one is added to both tables (their tests fail until it is).
const (
	// Invalid: the request or message is malformed or breaks a rule of
	// its format; the sender corrects it and sends it again.
	Invalid Kind = "invalid"
	// Unprocessable: well formed, but refused by a business rule that
	// the format does not express (a test INS in production, an
	// idempotency key reused for another body).
	Unprocessable Kind = "unprocessable"
	// Unauthenticated: the caller is not known (no or bad credentials).
	Unauthenticated Kind = "unauthenticated"
	// Forbidden: the caller is known but may not do this, or not for
	// this facility.
	Forbidden Kind = "forbidden"
	// NotFound: what is named does not exist, or is not the caller's to see.
	NotFound Kind = "not-found"
	// Gone: it existed and was deleted.
	Gone Kind = "gone"
	// Conflict: the target's current state forbids it (a task already
	// done, a key already taken, a request in progress).
	Conflict Kind = "conflict"
	// Stale: the version the caller based the change on (If-Match) is no
	// longer the current one.
	Stale Kind = "stale"
	// TooLarge: beyond a size limit.
	TooLarge Kind = "too-large"
	// Unsupported: a media type, message type, version or header that the
	// server cannot take at all, whatever the content.
	Unsupported Kind = "unsupported"
	// Unavailable: a dependency is down for a while; the same request may
	// succeed later.
	Unavailable Kind = "unavailable"
	// Internal: a failure of the server; logged in full, shown
	// generically. An Error without a Kind is internal.
	Internal Kind = "internal"
)

// Kinds lists every Kind, for the tables' tests.
var Kinds = []Kind{Invalid, Unprocessable, Unauthenticated, Forbidden, NotFound, Gone, Conflict, Stale,
	TooLarge, Unsupported, Unavailable, Internal}
