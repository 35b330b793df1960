package main

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
)

// TestDatedNow: with -dated now no date of the samples is left, and the
// messages still parse.
func TestDatedNow(t *testing.T) {
	datedNow = true
	t.Cleanup(func() { datedNow = false })
	now := time.Date(2026, 12, 7, 17, 30, 5, 0, paris)

	raw, err := os.ReadFile("../../pkg/hl7v2/testdata/adt-a03-cardiology-discharge.hl7")
	if err != nil {
		t.Fatal(err)
	}
	msg := hl7Now(bytes.ReplaceAll(bytes.TrimRight(raw, "\r\n"), []byte("\n"), []byte("\r")), now)
	for _, old := range []string{"20261003", "20260926"} {
		if bytes.Contains(msg, []byte(old)) {
			t.Errorf("HL7 message still dated %s: %q", old, msg)
		}
	}
	if !bytes.Contains(msg, []byte("|20261207172905|")) || !bytes.Contains(msg, []byte("|20261130173005|")) {
		t.Errorf("HL7 message not dated now: %q", msg)
	}
	if _, err := hl7v2.Parse(msg); err != nil {
		t.Errorf("dated HL7 message: %v", err)
	}

	raw, err = os.ReadFile("../../services/intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	body := fhirNow(raw, now)
	for _, old := range []string{"2026-10-03T", "2026-09-26T"} {
		if bytes.Contains(body, []byte(old)) {
			t.Errorf("FHIR message still dated %s", old)
		}
	}
	if !json.Valid(body) || !bytes.Contains(body, []byte("2026-12-07T17:30:05+01:00")) {
		t.Errorf("FHIR message not dated now")
	}
}
