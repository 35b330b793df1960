package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// loadEnv loads a configuration from env alone.
func loadEnv(env map[string]string, args ...string) (Config, error) {
	cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return cfg, err
}

// The practitioner claim is matched against one identifier system, the
// login NamingSystem unless configured; Pro Santé Connect's idNat_PS is one
// setting away, anything else is refused.
func TestPractitionerSystemSetting(t *testing.T) {
	cfg, err := loadEnv(nil)
	if err != nil || cfg.PractitionerSystem != directory.SystemLogin {
		t.Fatalf("default: %q, %v; want %s", cfg.PractitionerSystem, err, directory.SystemLogin)
	}
	cfg, err = loadEnv(map[string]string{"PASSERELLE_OIDC_ISSUER": "https://auth.example.org/realms/cpts",
		"PASSERELLE_OIDC_PRACTITIONER_SYSTEM": directory.SystemIDNPS})
	if err != nil || cfg.PractitionerSystem != directory.SystemIDNPS {
		t.Fatalf("idNat_PS: %q, %v", cfg.PractitionerSystem, err)
	}
	for name, env := range map[string]map[string]string{
		"unknown system":                 {"PASSERELLE_OIDC_ISSUER": "https://auth.example.org", "PASSERELLE_OIDC_PRACTITIONER_SYSTEM": "urn:oid:1.2.3"},
		"development provider with RPPS": {"PASSERELLE_OIDC_PRACTITIONER_SYSTEM": directory.SystemRPPS},
	} {
		if _, err := loadEnv(env); err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_OIDC_PRACTITIONER_SYSTEM:") {
			t.Errorf("%s: %v, want an error naming PASSERELLE_OIDC_PRACTITIONER_SYSTEM", name, err)
		}
	}
}
