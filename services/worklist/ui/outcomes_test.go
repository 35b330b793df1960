package ui

import (
	"context"
	"html/template"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// outcomesFigures stands for the outcomes service, whose counts are
// tested in services/outcomes: the page is what is tested here.
type outcomesFigures struct{}

func (outcomesFigures) Report(_ context.Context, _ directory.Actor, start, end time.Time, lang string) ([]OutcomeRow, []template.HTML, error) {
	title := "Mortalité toutes causes à 365 jours"
	if lang == "en" {
		title = "All-cause mortality within 365 days"
	}
	lo, hi := wilson(10, 190)
	lo2, hi2 := wilson(1, 5)
	return []OutcomeRow{{ID: "mortality-365d", Title: title, Initial: 200, Denominator: 190, Numerator: 10, Censored: 10,
			Rate: 10.0 / 190, Lower: lo, Upper: hi, HasRate: true, FixedHorizon: true, CensoredRegister: 4,
			HasKM: true, KM: 0.0561, KMLower: 0.0302, KMUpper: 0.1029, AtRisk: 183},
			// A year not over for most: five complete, 175 still in
			// follow-up; the estimate uses them all.
			{ID: "mortality-180d", Title: title + " (récent)", Initial: 180, Denominator: 5, Numerator: 1, Censored: 175,
				Rate: 0.2, Lower: lo2, Upper: hi2, HasRate: true, FixedHorizon: true,
				HasKM: true, KM: 0.04, KMLower: 0.0171, KMUpper: 0.0921, AtRisk: 40},
			// Not a fixed-horizon measure: no estimate, no warning.
			{ID: "tasks-on-time", Title: "Tâches", Initial: 12, Denominator: 12, Numerator: 9, Rate: 0.75, Lower: 0.5, Upper: 0.9, HasRate: true}},
		[]template.HTML{`<svg role="img" aria-label="km"></svg>`}, nil
}

func TestOutcomesPage(t *testing.T) {
	r := newRig(t, openSQLite(t))
	coord := r.client("coord.cpts")
	status, body := r.get(coord, "/outcomes?periodStart=2025-01-01&periodEnd=2025-12-31&baseline-measure=mortality-365d&baseline-num=34&baseline-den=200")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	contains(t, "outcomes page", body, `data-measure="mortality-365d"`, "5,26 % [2,88 % – 9,42 %]", "17,00 % [12,43 % – 22,82 %]",
		"Les intervalles ne se chevauchent pas", `aria-label="km"`, `value="2025-01-01"`,
		// The Kaplan–Meier estimate with its interval and number at risk,
		// the episodes still in follow-up and why.
		"5,61 % [3,02 % – 10,29 %]", "encore suivis à l&#39;horizon : 183", `data-in-followup="175"`,
		"dont 4 en attente du registre INSEE des décès", "Suivi complet", "Suivi incomplet")
	// The warning is on the row with fewer than 30 complete only.
	if n := strings.Count(body, `few-complete`); n != 1 {
		t.Errorf("%d rows warn of few complete follow-ups, want 1", n)
	}
	contains(t, "outcomes page", body, "Moins de 30 épisodes au suivi complet")
	_, body = r.get(coord, "/outcomes?lang=en&baseline-measure=mortality-365d&baseline-num=12&baseline-den=200")
	contains(t, "outcomes page in English", body, "All-cause mortality within 365 days", "The intervals overlap",
		"5.61% [3.02%–10.29%]", "still followed at the horizon: 183", "Fewer than 30 episodes with complete follow-up",
		"Complete follow-up", "Kaplan–Meier estimate")
	for _, fr := range []string{"encore suivis", "Suivi complet", " %"} {
		if strings.Contains(body, fr) {
			t.Errorf("English page holds %q", fr)
		}
	}
	if status, _ := r.get(r.client("ide.martin"), "/outcomes"); status != 403 {
		t.Fatalf("a nurse sees the outcomes: %d", status)
	}
}

// fieldError returns the message shown at a field, "" when none.
func fieldError(body, field string) string {
	m := regexp.MustCompile(`data-error-for="` + regexp.QuoteMeta(field) + `">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestOutcomesPageInputErrors(t *testing.T) {
	r := newRig(t, openSQLite(t))
	coord := r.client("coord.cpts")
	for _, tc := range []struct {
		name, query, field, fr, en string
	}{
		{"period reversed", "periodStart=2025-06-01&periodEnd=2025-01-01", "periodEnd",
			"La fin de la période est avant son début.", "The end of the period is before its start."},
		{"start not a date", "periodStart=2025-13-01&periodEnd=2025-12-31", "periodStart",
			"Date invalide : attendu AAAA-MM-JJ.", "Invalid date: expected YYYY-MM-DD."},
		{"end not a date", "periodStart=2025-01-01&periodEnd=31/12/2025", "periodEnd",
			"Date invalide : attendu AAAA-MM-JJ.", "Invalid date: expected YYYY-MM-DD."},
		{"events greater than patients", "baseline-measure=mortality-365d&baseline-num=250&baseline-den=200", "baseline-num",
			"Plus d&#39;événements (250) que de patients (200).", "More events (250) than patients (200)."},
		{"negative events", "baseline-measure=mortality-365d&baseline-num=-3&baseline-den=200", "baseline-num",
			"Un nombre négatif n&#39;a pas de sens ici.", "A negative number makes no sense here."},
		{"negative patients", "baseline-measure=mortality-365d&baseline-num=3&baseline-den=-200", "baseline-den",
			"Un nombre négatif n&#39;a pas de sens ici.", "A negative number makes no sense here."},
		{"no patient", "baseline-measure=mortality-365d&baseline-num=0&baseline-den=0", "baseline-den",
			"Au moins 1 patient.", "At least 1 patient."},
		{"events not a number", "baseline-measure=mortality-365d&baseline-num=dix&baseline-den=200", "baseline-num",
			"Nombre entier attendu.", "A whole number is expected."},
		{"patients missing", "baseline-measure=mortality-365d&baseline-num=10", "baseline-den",
			"À remplir avec l&#39;autre nombre de la référence.", "Fill in together with the baseline&#39;s other number."},
		{"unknown measure", "baseline-measure=mortalite&baseline-num=10&baseline-den=200", "baseline-measure",
			"Indicateur inconnu.", "Unknown measure."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for lang, want := range map[string]string{"fr": tc.fr, "en": tc.en} {
				status, body := r.get(coord, "/outcomes?"+tc.query+"&lang="+lang)
				if status != 400 {
					t.Errorf("%s: status %d, want 400", lang, status)
				}
				if got := fieldError(body, tc.field); got != want {
					t.Errorf("%s: message at %s = %q, want %q", lang, tc.field, got, want)
				}
				if !strings.Contains(body, `name="`+tc.field+`"`) || !strings.Contains(body, `aria-describedby="err-`+tc.field+`"`) {
					t.Errorf("%s: the field %s is not marked as refused", lang, tc.field)
				}
				// What was typed is still there.
				for _, kv := range strings.Split(tc.query, "&") {
					_, v, _ := strings.Cut(kv, "=")
					if v != "mortality-365d" && v != "mortalite" && !strings.Contains(body, `value="`+template.HTMLEscapeString(v)+`"`) {
						t.Errorf("%s: %q lost", lang, v)
					}
				}
				if strings.Contains(body, "Les intervalles") || strings.Contains(body, "The intervals") {
					t.Errorf("%s: a refused baseline is compared", lang)
				}
			}
		})
	}
	// A good query has no message at all.
	status, body := r.get(coord, "/outcomes?periodStart=2025-01-01&periodEnd=2025-12-31&baseline-measure=mortality-365d&baseline-num=10&baseline-den=200")
	if status != 200 || strings.Contains(body, "data-error-for") {
		t.Errorf("good input: %d, errors shown: %v", status, strings.Contains(body, "data-error-for"))
	}
}
