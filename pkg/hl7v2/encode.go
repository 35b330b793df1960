package hl7v2

// Encode returns the message in HL7 v2 wire form: each segment followed by a
// carriage return (HL7 v2.5 chapter 2), values escaped for the
// delimiters MSH-1 and MSH-2 declare, text in the character set MSH-18 names.
// A message without a usable MSH is written with the default delimiters in
// UTF-8.
//
// A message whose MSH-2 leaves out the escape or sub-component character (see
// Parse) cannot escape: values holding a delimiter, and sub-components where
// there is no sub-component separator, are written as they are. Parse never
// builds such values.
func (m *Message) Encode() []byte {
	d, enc := m.delimiters()
	cs := m.charset()
	e := newEscaper(d, cs)
	n := 0
	for i := range m.Segments {
		n += 4 + 8*len(m.Segments[i].Fields)
		for _, f := range m.Segments[i].Fields {
			for _, r := range f {
				for _, c := range r {
					for _, s := range c {
						n += len(s) + 1
					}
				}
			}
		}
	}
	b := make([]byte, 0, n)
	for i := range m.Segments {
		seg := &m.Segments[i]
		b = append(b, seg.ID...)
		fields := seg.Fields
		if seg.ID == "MSH" {
			b = append(b, d.Field)
			b = append(b, enc...)
			if len(fields) > 2 {
				fields = fields[2:]
			} else {
				fields = nil
			}
		}
		for _, f := range fields {
			b = append(b, d.Field)
			b = appendField(b, f, d, e)
		}
		b = append(b, '\r')
	}
	return cs.encodeText(b)
}

func appendField(b []byte, f Field, d Delimiters, e *escaper) []byte {
	for ri, r := range f {
		if ri > 0 && d.Repetition != 0 {
			b = append(b, d.Repetition)
		}
		for ci, c := range r {
			if ci > 0 && d.Component != 0 {
				b = append(b, d.Component)
			}
			for si, s := range c {
				if si > 0 && d.SubComponent != 0 {
					b = append(b, d.SubComponent)
				}
				b = e.append(b, s)
			}
		}
	}
	return b
}
