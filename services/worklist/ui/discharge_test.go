package ui

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDischargeFormFieldErrors sends the ward discharge form with one wrong
// field at a time and checks that the form comes back (422) with the
// message at that field, in the page's language, with everything typed
// kept, and that nothing went to the intake. The rig's clock is 5 October
// 2026, 10:00 in Paris.
func TestDischargeFormFieldErrors(t *testing.T) {
	r := newRig(t, openSQLite(t))
	good := func() url.Values {
		return url.Values{"facility": {"420000002"}, "family": {"Testlebon"}, "given": {"Jean Pierre"}, "birth-date": {"1950-02-01"},
			"gender": {"male"}, "ipp": {"IPP42"}, "visit-number": {"V42"}, "admission": {"2026-09-28"}, "discharge": {"2026-10-05T09:30"},
			"diagnosis": {"I50.1"}, "gp-rpps": {"10000001049"}, "gp-name": {"Anne Généraliste"}, "postal-code": {"42300"}, "commune": {"42187"}, "city": {"Roanne"},
			"letter": {"Sortie sous furosémide."}, "message-id": {"8f0e3a52-8c1e-4a57-9a0e-1d2c3b4a5002"}}
	}
	cases := []struct {
		name, lang, field, value string
		want                     string
	}{
		{"postal code of four digits", "fr", "postal-code", "4230", "Un code postal compte 5 chiffres"},
		{"postal code with a letter", "en", "postal-code", "4230A", "A postal code has 5 digits"},
		{"commune code too short", "fr", "commune", "4218", "Un code commune INSEE compte 5 caractères"},
		{"discharge in the future", "fr", "discharge", "2026-12-05T09:30", "La sortie est dans le futur"},
		{"discharge later today", "en", "discharge", "2026-10-05T10:30", "The discharge is in the future"},
		{"discharge before admission", "fr", "discharge", "2026-09-20T09:30", "La sortie précède l'admission (28/09/2026)"},
		{"discharge not a date", "fr", "discharge", "hier", "Date et heure invalides"},
		{"admission in the future", "fr", "admission", "2026-10-06", "La date d'admission est dans le futur"},
		{"birth in the future", "en", "birth-date", "2027-01-01", "The birth date is in the future"},
		{"GP RPPS with a wrong key", "fr", "gp-rpps", "10000001048", "Numéro RPPS incorrect : clé de Luhn du numéro RPPS incorrecte"},
		{"GP RPPS with a wrong key, English", "en", "gp-rpps", "10000001048", "Wrong RPPS number: wrong Luhn key in the RPPS number"},
		{"GP RPPS too short", "fr", "gp-rpps", "1000000104", "Numéro RPPS incorrect : le numéro RPPS doit compter 11 chiffres"},
		{"INS too short", "fr", "ins", "28001012345678", "Le matricule INS compte 15 caractères"},
		{"name missing", "fr", "family", "", "Champ obligatoire"},
		{"visit number missing", "en", "visit-number", "", "Required field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.intake = nil
			c := r.client("coord.cpts")
			r.get(c, "/discharge?lang="+tc.lang)
			form := good()
			form.Set(tc.field, tc.value)
			status, body, _ := r.post(c, "coord.cpts", "/discharge", form)
			if status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", status)
			}
			if r.intake != nil {
				t.Fatal("a wrong form went to the intake")
			}
			contains(t, tc.name, body,
				`id="`+tc.field+`-error">`+template.HTMLEscapeString(tc.want),
				`id="`+tc.field+`" aria-invalid="true" aria-describedby="`+tc.field+`-error"`,
				`href="#`+tc.field+`"`)
			// Nothing typed is lost, the wrong value included.
			keep := []string{`value="Jean Pierre"`, `value="IPP42"`, `value="Roanne"`, "Sortie sous furosémide.", `<option value="I50.1" selected>`}
			if tc.value != "" {
				keep = append(keep, `value="`+template.HTMLEscapeString(tc.value)+`"`)
			}
			contains(t, tc.name, body, keep...)
			// One field wrong: no other field is marked.
			if n := strings.Count(body, `aria-invalid="true"`); n != 1 {
				t.Errorf("%d fields marked wrong, want 1", n)
			}
			if tc.lang == "en" {
				lacks(t, tc.name, body, "Champ obligatoire", "Corrigez")
			} else {
				lacks(t, tc.name, body, "Required field", "Wrong RPPS", "Bundle.entry")
			}
		})
	}
	t.Run("several fields at once", func(t *testing.T) {
		c := r.client("coord.cpts")
		form := good()
		form.Set("postal-code", "423")
		form.Set("gp-rpps", "123")
		form.Set("discharge", "2026-12-05T09:30")
		status, body, _ := r.post(c, "coord.cpts", "/discharge", form)
		if status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d", status)
		}
		if n := strings.Count(body, `aria-invalid="true"`); n != 3 {
			t.Errorf("%d fields marked wrong, want 3", n)
		}
	})
	t.Run("postal code with a space is accepted", func(t *testing.T) {
		r.intake = nil
		c := r.client("coord.cpts")
		form := good()
		form.Set("postal-code", "42 300")
		form.Set("message-id", "8f0e3a52-8c1e-4a57-9a0e-1d2c3b4a5003")
		_, body, first := r.post(c, "coord.cpts", "/discharge", form)
		if first == nil || first.StatusCode != http.StatusSeeOther {
			t.Fatalf("not sent:\n%s", body)
		}
		if r.intake == nil || !strings.Contains(string(r.intake), `"postalCode":"42300"`) {
			t.Fatalf("bundle %s", r.intake)
		}
	})
}
