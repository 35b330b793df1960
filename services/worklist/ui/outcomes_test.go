package ui

import (
	"context"
	"html/template"
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
	lo2, hi2 := wilson(5, 5)
	return []OutcomeRow{{ID: "mortality-365d", Title: title, Initial: 200, Denominator: 190, Numerator: 10, Censored: 10,
			Rate: 10.0 / 190, Lower: lo, Upper: hi, HasRate: true},
			// A year not over for most: only the deaths have closed windows.
			{ID: "mortality-365d-recent", Title: title, Initial: 180, Denominator: 5, Numerator: 5, Censored: 175,
				Rate: 1, Lower: lo2, Upper: hi2, HasRate: true}},
		[]template.HTML{`<svg role="img" aria-label="km"></svg>`}, nil
}

func TestOutcomesPage(t *testing.T) {
	r := newRig(t, openSQLite(t))
	coord := r.client("coord.cpts")
	status, body := r.get(coord, "/outcomes?periodStart=2025-01-01&periodEnd=2025-12-31&baseline-measure=mortality-365d&baseline-num=34&baseline-den=200")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	for _, want := range []string{`data-measure="mortality-365d"`, "5,26 % [2,88 % – 9,42 %]", "17,00 % [12,43 % – 22,82 %]",
		"Les intervalles ne se chevauchent pas", `aria-label="km"`, `value="2025-01-01"`} {
		contains(t, "outcomes page", body, want)
	}
	// The warning is on the mostly censored row only.
	if n := strings.Count(body, `class="mostly-censored"`); n != 1 {
		t.Errorf("%d rows flagged as mostly censored, want 1", n)
	}
	_, body = r.get(coord, "/outcomes?lang=en&baseline-measure=mortality-365d&baseline-num=12&baseline-den=200")
	contains(t, "outcomes page in English", body, "All-cause mortality within 365 days")
	contains(t, "outcomes page in English", body, "The intervals overlap")
	if status, _ := r.get(r.client("ide.martin"), "/outcomes"); status != 403 {
		t.Fatalf("a nurse sees the outcomes: %d", status)
	}
}
