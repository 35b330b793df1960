package hl7v2

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenNow and goldenControlID make the ACKs in the golden files stable.
var (
	goldenNow       = time.Date(2026, 10, 3, 15, 30, 5, 0, Paris)
	goldenControlID = "ACK000001"
)

// dump is what a golden file holds for one message: every typed accessor,
// a few derived values the receiver relies on, and the ACK it would answer.
type dump struct {
	ParseErrors []ackErrorJSON `json:"parse_errors,omitempty"`
	MSH         *MSH           `json:"msh,omitempty"`
	EVN         *EVN           `json:"evn,omitempty"`
	PID         *PID           `json:"pid,omitempty"`
	ROL         []ROL          `json:"rol,omitempty"`
	PV1         *PV1           `json:"pv1,omitempty"`
	ZBE         *ZBE           `json:"zbe,omitempty"`
	ZFM         *ZFM           `json:"zfm,omitempty"`
	DG1         []DG1          `json:"dg1,omitempty"`
	FieldErrors []ackErrorJSON `json:"field_errors,omitempty"`
	Derived     *derived       `json:"derived,omitempty"`
	Ack         []string       `json:"ack"`
}

type derived struct {
	INS               string `json:"ins,omitempty"`
	INSOID            string `json:"ins_oid,omitempty"`
	IPP               string `json:"ipp,omitempty"`
	BirthFamily       string `json:"birth_family,omitempty"`
	UsedFamily        string `json:"used_family,omitempty"`
	BirthPlace        string `json:"birth_place,omitempty"`
	Qualified         bool   `json:"qualified"`
	ODRPRPPS          string `json:"odrp_rpps,omitempty"`
	UF                string `json:"uf,omitempty"`
	PrincipalDiagnose string `json:"principal_diagnosis,omitempty"`
}

type ackErrorJSON struct {
	Location string `json:"location,omitempty"`
	Code     int    `json:"code"`
	Message  string `json:"message"`
}

func toJSONErrs(errs []AckError) []ackErrorJSON {
	var out []ackErrorJSON
	for _, e := range errs {
		out = append(out, ackErrorJSON{Location: e.Location.String(), Code: e.Code, Message: e.Message})
	}
	return out
}

func buildDump(t *testing.T, data []byte) dump {
	t.Helper()
	var d dump
	m, err := Parse(data)
	if err != nil {
		d.ParseErrors = toJSONErrs(AckErrors(err))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Parse error %v is not a *ParseError", err)
		}
		hdr, herr := ParseHeader(data)
		if herr != nil {
			hdr = nil
		}
		if hdr != nil {
			d.MSH, _ = hdr.MSH()
		}
		d.Ack = ackLines(Ack(hdr, pe.AckCode(), AckErrors(err), goldenNow, goldenControlID))
		return d
	}
	var errs []error
	keep := func(e error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	var e error
	d.MSH, e = m.MSH()
	keep(e)
	d.EVN, e = m.EVN()
	keep(e)
	d.PID, e = m.PID()
	keep(e)
	d.ROL = m.ROL()
	d.PV1, e = m.PV1()
	keep(e)
	d.ZBE, e = m.ZBE()
	keep(e)
	d.ZFM = m.ZFM()
	d.DG1, e = m.DG1()
	keep(e)
	fieldErrs := AckErrors(errors.Join(errs...))
	d.FieldErrors = toJSONErrs(fieldErrs)

	dv := &derived{}
	if d.PID != nil {
		if ins, ok := d.PID.INS(); ok {
			dv.INS, dv.INSOID = ins.ID, ins.AssigningAuthority.UniversalID
		}
		if ipp, ok := d.PID.Identifier("PI"); ok {
			dv.IPP = ipp.ID
		}
		if n, ok := d.PID.Name("L"); ok {
			dv.BirthFamily = n.Family
		}
		if n, ok := d.PID.Name("D"); ok {
			dv.UsedFamily = n.Family
		}
		dv.BirthPlace = d.PID.BirthPlace()
		dv.Qualified = d.PID.HasReliability("VALI")
	}
	for _, r := range d.ROL {
		if r.Role.Code == RoleODRP && len(r.Persons) > 0 {
			dv.ODRPRPPS = r.Persons[0].RPPS()
		}
	}
	if d.ZBE != nil {
		dv.UF = d.ZBE.UF()
	}
	for _, dg := range d.DG1 {
		if dg.Principal() {
			dv.PrincipalDiagnose = dg.Code.Code
		}
	}
	d.Derived = dv
	code := AckAccept
	if len(fieldErrs) > 0 {
		code = AckApplicationError
	}
	d.Ack = ackLines(Ack(m, code, fieldErrs, goldenNow, goldenControlID))
	return d
}

// ackLines encodes an ACK and splits it into segments for a readable golden
// file (the bytes are UTF-8 for every ACK in testdata but the Latin-9 one,
// which is decoded back for display).
func ackLines(ack *Message) []string {
	b := ack.Encode()
	m, err := Parse(b)
	if err != nil {
		return []string{"unparsable ACK: " + err.Error()}
	}
	text := string(b)
	if m.charset() != csUTF8 {
		text, _ = m.charset().decodeBytes(b)
	}
	return strings.Split(strings.TrimSuffix(text, "\r"), "\r")
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hl7")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(buildDump(t, data)); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(file, ".hl7") + ".golden"
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := buf.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("%s differs from the current output (-want +got):\n%s", golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestRoundTripGolden checks the parse-encode-parse property on every
// parsable message in testdata.
func TestRoundTripGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.hl7")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		m, err := Parse(data)
		if err != nil {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) { checkRoundTrip(t, m) })
	}
}

func checkRoundTrip(t *testing.T, m *Message) {
	t.Helper()
	enc := m.Encode()
	m2, err := Parse(enc)
	if err != nil {
		t.Fatalf("Parse(Encode(m)): %v\nencoded: %q", err, enc)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("Parse(Encode(m)) differs from m\nm:  %#v\nm2: %#v\nencoded: %q", m, m2, enc)
	}
	if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
		t.Fatalf("Encode is not stable:\n%q\n%q", enc, enc2)
	}
}

// lineDiff is a minimal line diff for golden mismatches.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}
