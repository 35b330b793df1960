package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives an Encode-Parse round trip unchanged, encodes without raw MLLP
// block characters, and can be acknowledged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.hl7")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rNTE|1||\\H\\x\\N\\\\X0D\\\\XC3A9\\\\E\\\\F\\"))
	f.Add([]byte("MSH|^~\\|A|B|C|D|2026||ADT^A01|1|P|2.5|||||FRA|8859/1\rPID|1||\xe9&\\T\\"))
	f.Add([]byte("MSH#$*!@#A#B#C#D#2026##ADT$A01#1#P#2.5\nPID#1$2*3$4@x!F!\r\n"))
	now := time.Date(2026, 10, 3, 15, 30, 0, 0, Paris)
	f.Fuzz(func(t *testing.T, data []byte) {
		if hdr, err := ParseHeader(data); err == nil {
			_ = Ack(hdr, AckReject, nil, now, "X").Encode()
		}
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a message with an error")
			}
			_ = AckErrors(err)
			return
		}
		enc := m.Encode()
		if bytes.IndexByte(enc, 0x0B) >= 0 || bytes.IndexByte(enc, 0x1C) >= 0 {
			if m.Delimiters().Escape != 0 {
				t.Fatalf("Encode wrote a raw MLLP block character: %q", enc)
			}
		}
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(m)) failed: %v\ninput:   %q\nencoded: %q", err, data, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("Parse(Encode(m)) != m\ninput:   %q\nencoded: %q\nm:  %#v\nm2: %#v", data, enc, m, m2)
		}
		if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode not stable: %q then %q", enc, enc2)
		}
		// The typed accessors must not panic on anything Parse accepts.
		_, _ = m.MSH()
		_, _ = m.EVN()
		_, _ = m.PID()
		_, _ = m.PV1()
		_, _ = m.ZBE()
		_, _ = m.DG1()
		_ = m.ROL()
		_ = m.ZFM()
		ack := Ack(m, AckAccept, []AckError{{Location: Location{Segment: "PID", Field: 3}, Code: CodeDataType, Message: m.Get("PID-5")}}, now, m.Get("MSH-10"))
		if _, err := Parse(ack.Encode()); err != nil {
			t.Fatalf("ACK does not parse: %v\n%q", err, ack.Encode())
		}
	})
}

// FuzzEncodeValue checks that any text put in a field comes back unchanged
// through Encode and Parse, under each supported character set it fits in.
func FuzzEncodeValue(f *testing.F) {
	for _, v := range []string{"", "plain", `a|b^c~d&e\f`, "\r\n\x0b\x1c", `\H\x\N\`, `\X41\`, `C:\dir`, `\E\F\E\`,
		"Prés & Bois", "Œuvre 50 €", `\Zé\`, "\\", `\\\`, "\x00"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return
		}
		for _, cs := range []string{"UNICODE UTF-8", "8859/1", "8859/15"} {
			if cs != "UNICODE UTF-8" {
				c, _ := charsetNamed(cs)
				fits := true
				for _, r := range v {
					if r >= 0x80 && c.encodeRune(r) == '?' {
						fits = false
					}
				}
				if !fits {
					continue
				}
			}
			m := &Message{Segments: []Segment{{ID: "MSH"}, {ID: "NTE"}}}
			msh := &m.Segments[0]
			msh.SetField(1, NewField("|"))
			msh.SetField(2, NewField(`^~\&`))
			msh.SetField(9, NewField("ADT", "A01"))
			msh.SetField(10, NewField("1"))
			msh.SetField(12, NewField("2.5"))
			msh.SetField(18, NewField(cs))
			m.Segments[1].SetField(3, NewField(v))
			enc := m.Encode()
			m2, err := Parse(enc)
			if err != nil {
				t.Fatalf("%s: Parse(Encode) of %q: %v\n%q", cs, v, err, enc)
			}
			if got := m2.Get("NTE-3"); got != v {
				t.Fatalf("%s: value %q came back as %q\nencoded %q", cs, v, got, enc)
			}
		}
	})
}
