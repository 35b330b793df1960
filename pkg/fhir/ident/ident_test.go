package ident

import (
	"errors"
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) error
		value string
		// wantErr is a fragment of the English message, "" when valid.
		wantErr string
	}{
		{"INS sample", CheckINS, "248034218701255", ""},
		{"INS wrong key", CheckINS, "248034218701256", "wrong INS check key"},
		{"INS short", CheckINS, "24803421870125", "15 characters"},
		{"INS letter", CheckINS, "2480342187X1255", "character 11"},
		{"INS letter key", CheckINS, "2480342187012X5", "key"},
		// 2A: the key is computed on 1850519012345, 2B on 1850518012345.
		{"INS Corsica 2A", CheckINS, "185052A01234579", ""},
		{"INS Corsica 2B", CheckINS, "185052B01234509", ""},
		{"INS Corsica 2A wrong key", CheckINS, "185052A01234500", "wrong INS check key"},
		{"INS 2C", CheckINS, "185052C01234579", "character 7"},
		{"INS empty", CheckINS, "", "15 characters"},
		{"INS multibyte", CheckINS, "2480342187012é5", "15 characters"},

		{"RPPS GP", CheckRPPS, "10000000009", ""},
		{"RPPS other", CheckRPPS, "10000001015", ""},
		{"RPPS nurse", CheckRPPS, "10000000033", ""},
		{"RPPS letter", CheckRPPS, "1000000000X", "character 11 is not a digit"},
		{"RPPS wrong key", CheckRPPS, "10000000008", "wrong Luhn key"},
		{"RPPS long", CheckRPPS, "100000000090", "11 digits"},

		{"idNat_PS RPPS", CheckIDNPS, "810000000009", ""},
		{"idNat_PS RPPS wrong key", CheckIDNPS, "810000000008", "wrong Luhn key"},
		{"idNat_PS RPPS letter", CheckIDNPS, "81000000000X", "character 12"},
		{"idNat_PS RPPS short", CheckIDNPS, "81000000000", "12 characters"},
		{"idNat_PS ADELI", CheckIDNPS, "0421234567", ""},
		{"idNat_PS ADELI bad char", CheckIDNPS, "04212345-7", "character 9"},
		{"idNat_PS prefix", CheckIDNPS, "910000000009", "starts with 8"},
		{"idNat_PS empty", CheckIDNPS, "", "empty"},

		{"FINESS CH", CheckFINESS, "420000002", ""},
		{"FINESS pharmacy", CheckFINESS, "420000101", ""},
		{"FINESS other", CheckFINESS, "420000200", ""},
		{"FINESS Bonifacio", CheckFINESS, "2A0000170", ""},
		{"FINESS Castelluccio", CheckFINESS, "2A0000386", ""},
		{"FINESS Sartène", CheckFINESS, "2A0002606", ""},
		{"FINESS Bastia", CheckFINESS, "2B0000020", ""},
		{"FINESS Corte", CheckFINESS, "2B0004246", ""},
		{"FINESS Calvi", CheckFINESS, "2B0005342", ""},
		{"FINESS Bastia wrong key", CheckFINESS, "2B0000021", "wrong Luhn key"},
		{"FINESS wrong key", CheckFINESS, "420000003", "wrong Luhn key"},
		{"FINESS 3A", CheckFINESS, "3A0000170", "character 2"},
		{"FINESS letter at end", CheckFINESS, "42000000A", "character 9"},
		{"FINESS short", CheckFINESS, "42000000", "9 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(tt.value)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("check(%q) = %v, want nil", tt.value, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("check(%q) = nil, want an error containing %q", tt.value, tt.wantErr)
			}
			var ie *Error
			if !errors.As(err, &ie) || ie.FR == "" || ie.EN == "" {
				t.Fatalf("check(%q) = %#v, want an *Error with both texts", tt.value, err)
			}
			if !strings.Contains(ie.EN, tt.wantErr) {
				t.Fatalf("check(%q) = %q, want it to contain %q", tt.value, ie.EN, tt.wantErr)
			}
			if tt.value != "" && strings.Contains(err.Error(), tt.value) {
				t.Fatalf("error %q repeats the value", err)
			}
		})
	}
}

func TestForSystem(t *testing.T) {
	for _, s := range []string{SystemINSNIR, SystemINSNIA, SystemINSTest, SystemINSDemo, SystemRPPS, SystemIDNPS, SystemFINESS} {
		if _, ok := ForSystem(s); !ok {
			t.Errorf("ForSystem(%q) has no check", s)
		}
	}
	if _, ok := ForSystem("urn:oid:2.999.250.1.1"); ok {
		t.Error("a facility's IPP domain has no check key")
	}
	for name, f := range Checkers {
		if f == nil {
			t.Errorf("Checkers[%q] is nil", name)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"248034218701255", "185052A01234524", "10000000009", "810000000009", "0421234567", "2A0000170", "420000002", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for name, check := range Checkers {
			if err := check(v); err != nil {
				var ie *Error
				if !errors.As(err, &ie) || ie.FR == "" || ie.EN == "" {
					t.Fatalf("%s(%q): %#v is not a complete *Error", name, v, err)
				}
			}
		}
	})
}
