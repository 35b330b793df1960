package search

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Élodie", "elodie"},
		{"LEFÈVRE", "lefevre"},
		{"Dupont-Cœur", "dupont-coeur"},
		{"  Jean   Pierre\t\n", "jean pierre"},
		{"D’Arc", "d'arc"},
		{"E\u0301lodie", "elodie"}, // decomposed é
		{"Łukasz Straße", "lukasz strasse"},
		{"ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝŸ", "aaaaaaceeeeiiiinoooooouuuuyy"},
		{"", ""},
		{"   ", ""},
		{"42300", "42300"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Normalize(Normalize(tt.in)); got != Normalize(tt.in) {
			t.Errorf("Normalize is not idempotent on %q", tt.in)
		}
	}
}
