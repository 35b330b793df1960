package outcome

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

func TestCSVRows(t *testing.T) {
	now := paris("2025-12-31 12:00")
	var b bytes.Buffer
	cw, err := NewCSVWriter(&b, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cohort() {
		for _, c := range Cases(r, CivilDay(2025, 1, 1), CivilDay(2025, 12, 31)) {
			if err := cw.Write(c, "x-"+c.Ep.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := cw.Flush()
	if err != nil || n != 8 {
		t.Fatalf("%d rows, %v", n, err)
	}
	rows, _ := csv.NewReader(&b).ReadAll()
	byID := map[string][]string{}
	for _, r := range rows[1:] {
		byID[r[0]] = r
	}
	for id, want := range map[string]string{
		// episode,pathway,hospital,discharge,follow-up,readmissions,death,first contact
		"x-e1": "x-e1,hf-post-discharge,420000002,2025-01-10,355,2025-02-09,,3",
		"x-e2": "x-e2,hf-post-discharge,420000002,2025-01-10,355,2025-02-10,,8",
		"x-e4": "x-e4,hf-post-discharge,420000002,2025-03-01,0,,2025-03-01,",
		"x-e6": "x-e6,hf-post-discharge,420000002,2025-04-01,20,2025-04-16,2025-04-21,",
		"x-e8": "x-e8,hf-post-discharge,420000002,2025-05-01,244,2025-08-09|2025-09-28,,",
	} {
		if got := strings.Join(byID[id], ","); got != want {
			t.Errorf("%s:\n got %s\nwant %s", id, got, want)
		}
	}
}

func TestACIMasked(t *testing.T) {
	p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: paris("2025-12-31 12:00")}
	rs, _ := Evaluate(p, cohort(), Readmission30)
	var b bytes.Buffer
	if err := WriteACI(&b, 2025, []*Result{Mask(rs[0], DefaultThreshold)}, DefaultThreshold); err != nil {
		t.Fatal(err)
	}
	rows, _ := csv.NewReader(&b).ReadAll()
	if len(rows) != 3 || rows[1][4] != "<11" || rows[1][6] != "" || rows[2][3] != "hf-post-discharge" {
		t.Errorf("ACI rows = %q", rows)
	}
}

func TestRenderSVG(t *testing.T) {
	c := KaplanMeier("hf-post-discharge", []Obs{{2, true}, {40, false}, {100, true}, {200, false}}, DefaultTicks)
	var b bytes.Buffer
	if err := RenderSVG(&b, []Curve{MaskCurve(c, DefaultThreshold)}, SVGOptions{Title: "Survie <test>", Threshold: DefaultThreshold}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>") || !strings.Contains(s, "Survie &lt;test&gt;") || !strings.Contains(s, "&lt;11") {
		t.Errorf("svg: %.300s", s)
	}
}
