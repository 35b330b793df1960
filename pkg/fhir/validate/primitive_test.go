package validate

import "testing"

func TestPrimitiveFormats(t *testing.T) {
	tests := []struct {
		p     primKind
		s     string
		valid bool
	}{
		{pDate, "1948", true},
		{pDate, "1948-03", true},
		{pDate, "1948-03-15", true},
		{pDate, "2024-02-29", true},
		{pDate, "2023-02-29", false},
		{pDate, "1900-02-29", false},
		{pDate, "2000-02-29", true},
		{pDate, "1948-02-30", false},
		{pDate, "1948-04-31", false},
		{pDate, "1948-13", false},
		{pDate, "1948-00-10", false},
		{pDate, "0000", false},
		{pDate, "48-03-15", false},
		{pDate, "1948-3-15", false},
		{pDate, "1948-03-15T10:00:00Z", false},
		{pDate, "", false},
		{pDateTime, "2026-10-03", true},
		{pDateTime, "2026-10", true},
		{pDateTime, "2026-10-03T15:30:00+02:00", true},
		{pDateTime, "2026-10-03T15:30:00.123Z", true},
		{pDateTime, "2026-10-03T23:59:60Z", true}, // a leap second
		{pDateTime, "2026-10-03T15:30:00", false}, // a time needs its zone
		{pDateTime, "2026-10-03T15:30+02:00", false},
		{pDateTime, "2026-10-03T24:00:00Z", false},
		{pDateTime, "2026-10-03T15:30:00+15:00", false},
		{pDateTime, "2026-10-03T15:30:00+14:00", true},
		{pDateTime, "2026-10-03T15:30:00.Z", false},
		{pDateTime, "2026-10-03 15:30:00Z", false},
		{pInstant, "2026-10-03T15:30:00+02:00", true},
		{pInstant, "2026-10-03", false},
		{pTime, "15:30:00", true},
		{pTime, "15:30:00.5", true},
		{pTime, "15:30", false},
		{pTime, "25:00:00", false},
		{pID, "0b6f3a52-8c1e.4a57", true},
		{pID, "a_b", false},
		{pID, "", false},
		{pID, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, // 65
		{pCode, "discharge-notification", true},
		{pCode, "text/plain; charset=utf-8", true},
		{pCode, " home", false},
		{pCode, "home ", false},
		{pCode, "a  b", false},
		{pCode, "", false},
		{pString, "Roanne", true},
		{pString, "", false},
		{pString, "ligne 1\nligne 2", true},
		{pString, "bell\a", false},
		{pURI, "urn:oid:2.999.250.1.1", true},
		{pURI, "http://x y", false},
		{pURI, "", false},
		{pOID, "urn:oid:1.2.250.1.213.1.4.8", true},
		{pOID, "urn:oid:3.1", false},
		{pOID, "urn:oid:1.02", false},
		{pOID, "1.2.250", false},
		{pUUID, "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001", true},
		{pUUID, "urn:uuid:0B6F3A52-8C1E-4A57-9A0E-1D2C3B4A5001", false},
		{pUUID, "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a500", false},
		{pInteger, "1", true},
		{pInteger, "-2147483648", true},
		{pInteger, "2147483648", false},
		{pInteger, "1.0", false},
		{pInteger, "1e3", false},
		{pPositiveInt, "0", false},
		{pPositiveInt, "1", true},
		{pUnsignedInt, "0", true},
		{pUnsignedInt, "-1", false},
		{pBase64, "U29ydGll", true},
		{pBase64, "U29ydGllIA==", true},
		{pBase64, "U29y dGll", true},
		{pBase64, "U29ydGl", false},
		{pBase64, "U2=9ydGll", false},
		{pBase64, "", false},
		{pXHTML, `<div xmlns="http://www.w3.org/1999/xhtml">ok</div>`, true},
		{pXHTML, `<div>no namespace</div>`, false},
		{pXHTML, `<p xmlns="http://www.w3.org/1999/xhtml">not a div</p>`, false},
		{pXHTML, `<div xmlns="http://www.w3.org/1999/xhtml"><a onclick="x()">y</a></div>`, false},
		{pXHTML, `<div xmlns="http://www.w3.org/1999/xhtml"><b>unclosed</div>`, false},
		{pXHTML, `<div xmlns="http://www.w3.org/1999/xhtml"/><div xmlns="http://www.w3.org/1999/xhtml"/>`, false},
	}
	for _, tt := range tests {
		fr, en := checkPrimitive(tt.p, tt.s)
		if (en == "") != tt.valid {
			t.Errorf("checkPrimitive(%d, %q) = %q, want valid %v", tt.p, tt.s, en, tt.valid)
		}
		if (fr == "") != (en == "") {
			t.Errorf("checkPrimitive(%d, %q): French and English disagree", tt.p, tt.s)
		}
	}
}

func TestParseJSON(t *testing.T) {
	valid := []string{
		`{}`, `[]`, `{"a":[1,-2.5e3,true,false,null,"x"]}`, ` {"é":"\u00e9\n\"\\\/"} `,
		`"\ud83d\ude00"`, `0`, `-0.0`,
	}
	invalid := []string{
		``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`,
		`"\x"`, `"\u12"`, `"\ud83d"`, `"\ude00"`, "\"\x01\"", "\"\xff\"", `tru`, `nul`, `{} {}`,
		`"unterminated`, `[` + string(make([]byte, 0)) + `"a"`,
	}
	var p parser
	for _, s := range valid {
		if _, err := parseJSON(&p, []byte(s)); err != nil {
			t.Errorf("parse %q: %s", s, err.en)
		}
	}
	for _, s := range invalid {
		if _, err := parseJSON(&p, []byte(s)); err == nil {
			t.Errorf("parse %q succeeded", s)
		}
	}
	deep := make([]byte, 0, 2*(maxDepth+1))
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, '[')
	}
	for i := 0; i <= maxDepth; i++ {
		deep = append(deep, ']')
	}
	if _, err := parseJSON(&p, deep); err == nil {
		t.Error("nesting beyond maxDepth accepted")
	}
	v, err := parseJSON(&p, []byte(`{"k":"a\tb","k":"c"}`))
	if err != nil || len(v.kids) != 2 || v.kids[0].val.str != "a\tb" || v.get("k").str != "a\tb" {
		t.Errorf("members not kept in order with duplicates: %+v, %v", v, err)
	}
}

// A pooled parser reuses its blocks; values from the previous document
// must not leak into the next one.
func TestParserReuse(t *testing.T) {
	p := parser{reuse: true}
	a, _ := parseJSON(&p, []byte(`{"a":[1,2,3],"b":{"c":"d"}}`))
	if a.get("b").get("c").str != "d" {
		t.Fatal("first parse wrong")
	}
	b, _ := parseJSON(&p, []byte(`{"x":"y"}`))
	if len(b.kids) != 1 || b.get("x").str != "y" || b.get("a") != nil {
		t.Fatalf("second parse wrong: %+v", b)
	}
}
