package hl7v2

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseError says where a message is wrong. Segment, SegmentIndex (the
// occurrence of that segment id, 1-based), Field, Repetition and Component
// locate the problem as ERR-2 does (HL7 v2.5 data type ERL); zero means not
// known or not relevant. Line is the 1-based line of the input, counting
// every segment terminator, or 0 when the error does not come from the text.
type ParseError struct {
	Segment      string
	SegmentIndex int
	Field        int
	Repetition   int
	Component    int
	Line         int
	// Code is the condition code of HL7 table 0357 that an ACK should carry
	// (CodeRequiredFieldMissing, CodeDataType…).
	Code int
	Msg  string

	noHeader bool // the message has no MSH to identify it
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("hl7v2: ")
	if loc := e.Location().String(); loc != "" {
		b.WriteString(loc)
		if e.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Location returns where the error is, in ERR-2 terms.
func (e *ParseError) Location() Location {
	return Location{
		Segment:    e.Segment,
		Sequence:   e.SegmentIndex,
		Field:      e.Field,
		Repetition: e.Repetition,
		Component:  e.Component,
	}
}

// InHeader reports whether the error is in MSH, the segment that identifies
// the message, its sender and its version, or is that there is no MSH.
func (e *ParseError) InHeader() bool { return e.Segment == "MSH" || e.noHeader }

// AckCode returns the acknowledgement code a receiver answers for this error
// in original mode (HL7 v2.5 chapter 2, original acknowledgment rules): AR ("rejected") when the
// message header itself is unusable, so that the message cannot be processed
// at all, and AE ("error") for a content error the sender must fix.
func (e *ParseError) AckCode() string {
	if e.InHeader() {
		return "AR"
	}
	return "AE"
}

// AckError returns the ERR entry describing e, with severity E.
func (e *ParseError) AckError() AckError {
	code := e.Code
	if code == 0 {
		code = CodeDataType
	}
	return AckError{Location: e.Location(), Code: code, Severity: SeverityError, Message: e.Msg}
}

// Parse parses one HL7 v2 message. On failure the error is a *ParseError, or
// several joined with errors.Join (the missing required MSH fields are all
// reported); errors.As finds the first, AckErrors lists them all. When Parse
// fails, ParseHeader may still read enough of MSH to acknowledge the message.
func Parse(data []byte) (*Message, error) {
	data, line := skipBlank(data)
	if len(data) == 0 {
		return nil, &ParseError{Line: line, Code: CodeSegmentSequence, Msg: "empty message", noHeader: true}
	}
	first := data[:lineEnd(data)]
	if !bytes.HasPrefix(first, []byte("MSH")) {
		id := string(first[:min(3, len(first))])
		if !isSegmentID(id) {
			id = ""
		}
		e := &ParseError{Segment: id, Line: line, Code: CodeSegmentSequence,
			Msg: "message must start with an MSH segment", noHeader: true}
		if id != "" {
			e.SegmentIndex = 1
		}
		if bytes.HasPrefix(first, []byte("FHS")) || bytes.HasPrefix(first, []byte("BHS")) {
			e.Msg = "batches (FHS/BHS) are not supported: send one message per frame"
		}
		return nil, e
	}
	d, cs, perr := header(first, line)
	if perr != nil {
		return nil, perr
	}
	s, ok := cs.decodeBytes(data)
	p := parser{s: s, d: d, cs: cs, line0: line}
	if !ok {
		off := firstInvalidUTF8(data)
		e := p.locate(off)
		e.Code = CodeDataType
		e.Msg = fmt.Sprintf("invalid UTF-8 for character set %s", cs.name())
		return nil, e
	}
	m, err := p.parse()
	if err != nil {
		return nil, err
	}
	if err := checkHeader(m); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseHeader reads only the MSH segment of data, as far as it goes, for
// acknowledging a message Parse rejected or that was too large to read
// whole. It tolerates a truncated MSH and skips the required-field checks,
// falling back to the default delimiters and UTF-8 when MSH-1, MSH-2 or
// MSH-18 are unusable. It fails only when data holds no MSH segment at all.
func ParseHeader(data []byte) (*Message, error) {
	data, line := skipBlank(data)
	first := data[:lineEnd(data)]
	if !bytes.HasPrefix(first, []byte("MSH")) {
		return nil, &ParseError{Line: line, Code: CodeSegmentSequence, Msg: "no MSH segment"}
	}
	d, cs, perr := header(first, line)
	if perr != nil {
		d, cs = DefaultDelimiters, csUTF8
		if len(first) > 3 && isDelimiterChar(first[3]) {
			d.Field = first[3]
		}
		if d.Field != '|' {
			// The sender's MSH-2 is unusable; without it a best effort with
			// the recommended characters could split on data characters.
			d.Component, d.Repetition, d.Escape, d.SubComponent = 0, 0, 0, 0
		}
	}
	s, ok := cs.decodeBytes(first)
	if !ok {
		s = strings.ToValidUTF8(s, "?")
	}
	p := parser{s: s, d: d, cs: cs, line0: line}
	p.initKinds()
	seg := p.msh(s)
	return &Message{Segments: []Segment{seg}}, nil
}

// skipBlank drops a UTF-8 byte order mark and leading blank lines, and
// returns the line number of what follows.
func skipBlank(data []byte) ([]byte, int) {
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	line := 1
	for len(data) > 0 {
		e := lineEnd(data)
		if !isBlank(data[:e]) {
			break
		}
		if e == len(data) {
			return nil, line
		}
		data = data[e+termLen(data[e:]):]
		line++
	}
	return data, line
}

func lineEnd(b []byte) int {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return i
		}
	}
	return len(b)
}

// termLen is the length of the segment terminator at the start of b: "\r\n"
// counts as one terminator.
func termLen(b []byte) int {
	if len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		return 2
	}
	return 1
}

func isBlank[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != ' ' && b[i] != '\t' {
			return false
		}
	}
	return true
}

// header reads the delimiters and character set from the bytes of the MSH
// line, before the message is decoded: MSH-18 decides how to decode it.
func header(first []byte, line int) (Delimiters, charset, *ParseError) {
	mshErr := func(field int, code int, msg string) *ParseError {
		return &ParseError{Segment: "MSH", SegmentIndex: 1, Field: field, Line: line, Code: code, Msg: msg}
	}
	if len(first) < 4 {
		return Delimiters{}, 0, mshErr(1, CodeRequiredFieldMissing, "MSH-1 field separator missing")
	}
	sep := first[3]
	rest := first[4:]
	enc := rest
	if i := bytes.IndexByte(rest, sep); i >= 0 {
		enc, rest = rest[:i], rest[i+1:]
	} else {
		rest = nil
	}
	d, why := delimitersFrom(sep, string(enc))
	if why != "" {
		field := 2
		if !isDelimiterChar(sep) {
			field = 1
		}
		code := CodeDataType
		if len(enc) == 0 {
			code = CodeRequiredFieldMissing
		}
		return Delimiters{}, 0, mshErr(field, code, why)
	}
	// rest starts at MSH-3; MSH-18 is its sixteenth field.
	var f []byte
	for n := 3; rest != nil && n <= 18; n++ {
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			f, rest = rest, nil
		} else {
			f, rest = rest[:i], rest[i+1:]
		}
		if n < 18 {
			f = nil
		}
	}
	for _, c := range []byte{d.Repetition, d.Component} {
		if c == 0 {
			continue
		}
		if i := bytes.IndexByte(f, c); i >= 0 {
			f = f[:i]
		}
	}
	cs, ok := charsetNamed(string(f))
	if !ok {
		return Delimiters{}, 0, mshErr(18, CodeTableValue,
			fmt.Sprintf("MSH-18 character set %q not supported (use UNICODE UTF-8, 8859/1 or 8859/15)", printable(string(f))))
	}
	return d, cs, nil
}

// printable shortens s and replaces non-printable bytes, for error texts.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == utf8.RuneError || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// checkHeader enforces the MSH fields HL7 v2.5 requires and that a receiver
// needs to answer at all: message type (MSH-9), control id (MSH-10), used in
// MSA-2, and version (MSH-12).
func checkHeader(m *Message) error {
	msh := &m.Segments[0]
	var errs []error
	for _, f := range []struct {
		n    int
		name string
	}{{9, "message type"}, {10, "message control id"}, {12, "version id"}} {
		if strings.TrimSpace(msh.Get(f.n, 1, 1, 1)) == "" {
			errs = append(errs, &ParseError{Segment: "MSH", SegmentIndex: 1, Field: f.n, Line: 0,
				Code: CodeRequiredFieldMissing, Msg: fmt.Sprintf("MSH-%d %s required", f.n, f.name)})
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// parser splits decoded text into the model. Leaves are substrings of s
// unless they hold escapes, and the model's slices are carved out of a few
// large arrays sized by counting delimiters first, so that parsing an ADT
// message costs a handful of allocations whatever its length.
type parser struct {
	s     string
	d     Delimiters
	cs    charset
	line0 int

	kind [256]uint8

	segs   []Segment
	fields []Field
	reps   []Repetition
	comps  []Component
	subs   []string
}

func (p *parser) count(c byte) int {
	if c == 0 {
		return 0
	}
	return strings.Count(p.s, string(rune(c)))
}

func (p *parser) parse() (*Message, error) {
	s := p.s
	ncr, nlf := strings.Count(s, "\r"), strings.Count(s, "\n")
	nl := ncr + nlf + 1
	nf := p.count(p.d.Field) + nl
	// Empty fields (most of an ADT segment) take no repetition, component or
	// sub-component: count the non-empty ones to size those arrays tightly.
	// MSH-1 and MSH-2 are two more.
	nonEmpty := 2
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], p.d.Field)
		if j < 0 {
			break
		}
		i += j + 1
		if i < len(s) && s[i] != p.d.Field && s[i] != '\r' && s[i] != '\n' {
			nonEmpty++
		}
	}
	nr := nonEmpty + p.count(p.d.Repetition)
	nc := nr + p.count(p.d.Component)
	ns := nc + p.count(p.d.SubComponent)
	p.initKinds()
	p.segs = make([]Segment, 0, nl)
	p.fields = make([]Field, 0, nf)
	p.reps = make([]Repetition, 0, nr)
	p.comps = make([]Component, 0, nc)
	p.subs = make([]string, 0, ns)

	// Senders use one terminator throughout: search for that one alone.
	lineEnd := lineEndString
	switch {
	case nlf == 0:
		lineEnd = func(s string) int { return indexOrLen(s, '\r') }
	case ncr == 0:
		lineEnd = func(s string) int { return indexOrLen(s, '\n') }
	}
	line := p.line0
	for pos := 0; pos < len(s); line++ {
		end := pos + lineEnd(s[pos:])
		text := s[pos:end]
		if end < len(s) {
			if s[end] == '\r' && end+1 < len(s) && s[end+1] == '\n' {
				end++
			}
			end++
		}
		pos = end
		if isBlank(text) {
			continue
		}
		if len(text) < 3 || !isSegmentID(text[:3]) || (len(text) > 3 && text[3] != p.d.Field) {
			return nil, &ParseError{Line: line, Code: CodeSegmentSequence,
				Msg: fmt.Sprintf("invalid segment id %q: want three upper-case letters or digits followed by the field separator", printable(text[:min(4, len(text))]))}
		}
		id := text[:3]
		if id == "MSH" {
			if len(p.segs) > 0 {
				return nil, &ParseError{Segment: "MSH", SegmentIndex: 2, Line: line, Code: CodeSegmentSequence,
					Msg: "a second MSH segment: send one message per frame"}
			}
			p.segs = append(p.segs, p.msh(text))
			continue
		}
		seg := Segment{ID: id}
		if len(text) > 3 {
			seg.Fields = p.splitFields(text[4:])
		}
		p.segs = append(p.segs, seg)
	}
	return &Message{Segments: p.segs[:len(p.segs):len(p.segs)]}, nil
}

func indexOrLen(s string, c byte) int {
	if i := strings.IndexByte(s, c); i >= 0 {
		return i
	}
	return len(s)
}

func lineEndString(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' {
			return i
		}
	}
	return len(s)
}

// msh builds the MSH segment from its line: MSH-1 and MSH-2 verbatim (HL7
// v2.5 MSH-1 and MSH-2 definitions), the rest split as any field.
func (p *parser) msh(text string) Segment {
	seg := Segment{ID: "MSH"}
	if len(text) < 4 {
		return seg
	}
	f0 := len(p.fields)
	p.fields = append(p.fields, p.leafField(text[3:4]))
	rest := text[4:]
	i := strings.IndexByte(rest, p.d.Field)
	if i < 0 {
		p.fields = append(p.fields, p.leafField(rest))
	} else {
		p.fields = append(p.fields, p.leafField(rest[:i]))
		p.appendFields(rest[i+1:])
	}
	seg.Fields = p.fields[f0:len(p.fields):len(p.fields)]
	return seg
}

// leafField is a field holding one value, not split nor unescaped.
func (p *parser) leafField(v string) Field {
	if v == "" {
		return nil
	}
	s0 := len(p.subs)
	p.subs = append(p.subs, v)
	c0 := len(p.comps)
	p.comps = append(p.comps, p.subs[s0:s0+1:s0+1])
	r0 := len(p.reps)
	p.reps = append(p.reps, p.comps[c0:c0+1:c0+1])
	return p.reps[r0 : r0+1 : r0+1]
}

func (p *parser) splitFields(t string) []Field {
	f0 := len(p.fields)
	p.appendFields(t)
	return p.fields[f0:len(p.fields):len(p.fields)]
}

// Byte classes for the splitting scanner.
const (
	kData uint8 = iota
	kSub
	kComp
	kRep
	kField
	kEsc
)

func (p *parser) initKinds() {
	for _, x := range []struct {
		c byte
		k uint8
	}{{p.d.SubComponent, kSub}, {p.d.Component, kComp}, {p.d.Repetition, kRep}, {p.d.Escape, kEsc}, {p.d.Field, kField}} {
		if x.c != 0 {
			p.kind[x.c] = x.k
		}
	}
}

// appendFields splits the fields of one segment in a single pass over its
// bytes: ADT fields are short, and one table lookup per byte beats a search
// call per delimiter level.
func (p *parser) appendFields(t string) {
	// The arrays are held in locals for the loop so that their lengths stay
	// in registers.
	subs, comps, reps, fields := p.subs, p.comps, p.reps, p.fields
	kind := &p.kind
	fieldStart, leafStart := 0, 0
	r0, c0, s0 := len(reps), len(comps), len(subs)
	hasEsc := false
	n := len(t)
	for i := 0; i <= n; i++ {
		k := kField // the end of the text ends the last field
		if i < n {
			// Skip the data bytes between delimiters in a tight loop.
			for kind[t[i]] == kData {
				i++
				if i == n {
					break
				}
			}
			if i < n {
				k = kind[t[i]]
				if k == kEsc {
					hasEsc = true
					continue
				}
			}
		}
		if k == kField && i == fieldStart {
			// Most fields of an ADT segment are empty: they are nil, and
			// their slot is already zero, so nothing is written.
			fields = extend(fields)
			leafStart, fieldStart = i+1, i+1
			continue
		}
		leaf := t[leafStart:i]
		if hasEsc {
			leaf = unescape(leaf, p.d, p.cs)
			hasEsc = false
		}
		leafStart = i + 1
		if leaf == "" {
			subs = extend(subs)
		} else {
			subs = append(subs, leaf)
		}
		if k == kSub {
			continue
		}
		ns := len(subs)
		comps = append(comps, subs[s0:ns:ns])
		s0 = ns
		if k == kComp {
			continue
		}
		nc := len(comps)
		reps = append(reps, comps[c0:nc:nc])
		c0 = nc
		if k == kRep {
			continue
		}
		nr := len(reps)
		fields = append(fields, reps[r0:nr:nr])
		r0 = nr
		fieldStart = i + 1
	}
	p.subs, p.comps, p.reps, p.fields = subs, comps, reps, fields
}

// extend adds a zero element to s. The arrays are only ever written at
// their length, so the slot past it is still zero as make left it: skipping
// the store saves a write barrier per empty value while the collector runs.
func extend[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

// locate maps a byte offset of the input to a ParseError naming its segment,
// field, repetition and component. The offset is in the raw bytes; for the
// single-byte sets and for UTF-8 up to the first invalid byte, raw and
// decoded offsets of the delimiters agree, as delimiters are ASCII.
func (p *parser) locate(off int) *ParseError {
	s := p.s
	line := p.line0
	counts := map[string]int{}
	for pos := 0; pos < len(s); line++ {
		end := pos + lineEndString(s[pos:])
		text := s[pos:end]
		next := end
		if next < len(s) {
			if s[next] == '\r' && next+1 < len(s) && s[next+1] == '\n' {
				next++
			}
			next++
		}
		if isBlank(text) {
			pos = next
			continue
		}
		id := ""
		if len(text) >= 3 && isSegmentID(text[:3]) {
			id = text[:3]
			counts[id]++
		}
		if off < pos || off > end {
			pos = next
			continue
		}
		e := &ParseError{Segment: id, Line: line}
		if id != "" {
			e.SegmentIndex = counts[id]
		}
		o := off - pos
		if o < 3 {
			return e
		}
		var fieldStart int
		if id == "MSH" {
			if o == 3 {
				e.Field = 1
				return e
			}
			e.Field = 2 + strings.Count(text[4:o], string(rune(p.d.Field)))
			fieldStart = strings.LastIndexByte(text[:o], p.d.Field) + 1
			if e.Field == 2 {
				return e
			}
		} else {
			e.Field = strings.Count(text[3:o], string(rune(p.d.Field)))
			fieldStart = strings.LastIndexByte(text[:o], p.d.Field) + 1
		}
		pre := text[fieldStart:o]
		e.Repetition, e.Component = 1, 1
		if p.d.Repetition != 0 {
			if i := strings.LastIndexByte(pre, p.d.Repetition); i >= 0 {
				e.Repetition += strings.Count(pre, string(rune(p.d.Repetition)))
				pre = pre[i+1:]
			}
		}
		if p.d.Component != 0 {
			e.Component += strings.Count(pre, string(rune(p.d.Component)))
		}
		return e
	}
	return &ParseError{Line: line}
}
