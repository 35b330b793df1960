package directory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// A login name is matched against one identifier system only. RPPS numbers
// are public: someone who picks a colleague's RPPS as user name at the
// identity provider must not become that colleague.
func TestPersonMatchesOneSystem(t *testing.T) {
	s := openSQLite(t)
	seeded(t, s)
	ctx := context.Background()
	const martinRPPS = "10000001015" // ide.martin's, in the development directory
	cases := []struct {
		name, system, login string
		want                string // Practitioner, or "" for ErrUnknown
	}{
		{"login by default", "", "ide.martin", "Practitioner/p-ide-martin"},
		{"an RPPS as user name", "", martinRPPS, ""},
		{"an idNat_PS as user name", "", "8" + martinRPPS, ""},
		{"RPPS when configured", directory.SystemRPPS, martinRPPS, "Practitioner/p-ide-martin"},
		{"login when RPPS is configured", directory.SystemRPPS, "ide.martin", ""},
		{"idNat_PS when configured", directory.SystemIDNPS, "8" + martinRPPS, "Practitioner/p-ide-martin"},
		{"RPPS when idNat_PS is configured", directory.SystemIDNPS, martinRPPS, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &directory.Resolver{Store: s, LoginSystem: c.system}
			a, err := r.Person(ctx, tenant, c.login)
			if c.want == "" {
				if !errors.Is(err, directory.ErrUnknown) {
					t.Fatalf("Person(%q) = %+v, %v; want ErrUnknown", c.login, a, err)
				}
				return
			}
			if err != nil || a.Practitioner != c.want {
				t.Fatalf("Person(%q) = %+v, %v; want %s", c.login, a, err, c.want)
			}
		})
	}
}
