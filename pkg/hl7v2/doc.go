// Package hl7v2 parses, builds and encodes HL7 v2 messages, with typed access
// to the ADT fields that IHE PAM France 2.11 (ITI-31, HL7 v2.5) carries and an
// original-mode acknowledgement builder.
//
// # Model
//
// A Message is a list of Segments; a Segment is its three-character id and its
// Fields; a Field is a list of Repetitions, a Repetition a list of Components,
// and a Component a list of sub-component strings. Every leaf string is
// unescaped: "\T\" in the wire form is "&" in the model, and Encode escapes it
// back. Field numbering follows HL7 v2.5 chapter 2 (message construction): for every
// segment, Fields[n-1] is field n; for MSH, MSH-1 is the field separator itself
// and MSH-2 the encoding characters, both kept verbatim so that Encode writes
// the delimiters the sender chose.
//
// Parse always builds the same shape from the same text: an empty field is
// nil, every other field has at least one repetition, every repetition at
// least one component, every component at least one sub-component, and
// trailing empty fields are kept, so Parse(m.Encode()) is structurally equal
// to a parsed m (reflect.DeepEqual).
//
// # Tolerance and strictness
//
// Segments end with a carriage return (HL7 v2.5 chapter 2); Parse also
// accepts "\n" and "\r\n" (some senders write files line by line), blank lines,
// a trailing terminator and a leading UTF-8 byte order mark. It is strict where
// a silent guess would corrupt data: the message must start with MSH, the
// delimiters must be distinct punctuation, segment ids are three upper-case
// letters or digits, MSH-9, MSH-10 and MSH-12 are required (HL7 v2.5 MSH
// segment definition), and the bytes must be valid in the character set MSH-18 declares.
// Errors are *ParseError values that name the segment, field and component, so
// the receiver can answer an ACK whose ERR-2 points at the problem.
//
// # Character sets
//
// MSH-18 (HL7 table 0211) selects how bytes become text: "UNICODE UTF-8" (the
// default when MSH-18 is empty, as IHE PAM France asks of new interfaces),
// "8859/1" and "8859/15" (the two Latin sets IHE PAM France 2.11 allows) and
// "ASCII". Parsed text is always UTF-8 in the model; Encode writes the bytes
// of the set MSH-18 names, replacing a character that set cannot hold with "?".
//
// # Escape sequences
//
// HL7 v2.5 chapter 2, escape sequences in text fields: \F\ \S\ \T\ \R\ \E\ become the delimiters, \Xhh..\
// the bytes it encodes (read in the message's character set), and \.br\ a line
// feed. Every other sequence (\H\, \N\, \Cxxyy\, \Mxxyyzz\, \Zxx\, other
// formatting commands) is kept verbatim in the model, backslashes included, and
// Encode writes it back verbatim, so a display system further on still sees it.
// A carriage return in a value is encoded as \X0D\, a line feed as \.br\, and
// the MLLP block characters 0x0B and 0x1C as \X0B\ and \X1C\, so an encoded
// message can always be framed.
package hl7v2
