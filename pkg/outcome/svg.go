package outcome

import (
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
)

// SVGOptions shape a drawing of curves.
type SVGOptions struct {
	Title string
	// Width and Height in pixels (default 640 × 400).
	Width, Height int
	// MaxDay is the last day on the horizontal axis (default: the curves'
	// last tick, or 365).
	MaxDay int
	// YLabel names the vertical axis.
	YLabel string
	// Threshold: a masked number at risk is written "<Threshold".
	Threshold int
	// Lang is the language of the numbers ("fr": "25 %", "12,5 %"; "en":
	// "25%", "12.5%").
	Lang string
	// Names gives the label shown for a curve name (e.g. "all"); a name
	// not in it is shown as is.
	Names map[string]string
	// AtRiskLabel heads the numbers at risk (default "n").
	AtRiskLabel string
}

// label is the shown name of a curve.
func (o SVGOptions) label(name string) string {
	if l, ok := o.Names[name]; ok {
		return l
	}
	return name
}

// percent writes a percentage in the options' language.
func (o SVGOptions) percent(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if o.Lang == "en" {
		return s + "%"
	}
	return strings.Replace(s, ".", ",", 1) + " %"
}

var palette = []string{"#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d68910"}

// RenderSVG draws Kaplan–Meier curves as steps with their 95 % bands and
// the numbers at risk under the plot: a standalone SVG that a page embeds
// as is.
func RenderSVG(w io.Writer, curves []Curve, o SVGOptions) error {
	if o.Width <= 0 {
		o.Width = 640
	}
	if o.Height <= 0 {
		o.Height = 400
	}
	if o.MaxDay <= 0 {
		o.MaxDay = 365
		for _, c := range curves {
			if n := len(c.Ticks); n > 0 && c.Ticks[n-1] > 0 {
				o.MaxDay = c.Ticks[n-1]
			}
		}
	}
	left, right, top := 56.0, 16.0, 36.0
	table := 18.0 * float64(len(curves)+1)
	bottom := 40.0 + table
	pw, ph := float64(o.Width)-left-right, float64(o.Height)-top-bottom
	x := func(day int) float64 { return left + pw*float64(min(day, o.MaxDay))/float64(o.MaxDay) }
	y := func(s float64) float64 { return top + ph*(1-s) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="11" role="img">`,
		o.Width, o.Height, o.Width, o.Height)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(o.Title))
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14" font-weight="bold">%s</text>`, left, html.EscapeString(o.Title))
	for i := 0; i <= 4; i++ {
		s := float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`, left, y(s), left+pw, y(s))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`, left-4, y(s)+4, o.percent(float64(i*25), 0))
	}
	ticks := []int{0}
	if len(curves) > 0 && len(curves[0].Ticks) > 0 {
		ticks = curves[0].Ticks
	}
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#999"/>`, x(t), top+ph, x(t), top+ph+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%d</text>`, x(t), top+ph+16, t)
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#333"/>`, left, top, pw, ph)
	if o.YLabel != "" {
		fmt.Fprintf(&b, `<text transform="translate(12 %g) rotate(-90)" text-anchor="middle">%s</text>`, top+ph/2, html.EscapeString(o.YLabel))
	}
	for i, c := range curves {
		col := palette[i%len(palette)]
		var line, upper, lower strings.Builder
		fmt.Fprintf(&line, "M%.1f %.1f", x(0), y(1))
		fmt.Fprintf(&upper, "M%.1f %.1f", x(0), y(1))
		lowerPts := []string{fmt.Sprintf("%.1f %.1f", x(0), y(1))}
		s, lo, hi := 1.0, 1.0, 1.0
		for _, st := range c.Steps {
			if st.Day > o.MaxDay {
				break
			}
			fmt.Fprintf(&line, " H%.1f V%.1f", x(st.Day), y(st.Survival))
			fmt.Fprintf(&upper, " H%.1f V%.1f", x(st.Day), y(st.Upper))
			lowerPts = append(lowerPts, fmt.Sprintf("%.1f %.1f", x(st.Day), y(lo)), fmt.Sprintf("%.1f %.1f", x(st.Day), y(st.Lower)))
			s, lo, hi = st.Survival, st.Lower, st.Upper
		}
		_ = hi
		fmt.Fprintf(&line, " H%.1f", x(o.MaxDay))
		fmt.Fprintf(&upper, " H%.1f", x(o.MaxDay))
		lowerPts = append(lowerPts, fmt.Sprintf("%.1f %.1f", x(o.MaxDay), y(lo)))
		for j := len(lowerPts) - 1; j >= 0; j-- {
			lower.WriteString(" L" + lowerPts[j])
		}
		fmt.Fprintf(&b, `<path d="%s%s Z" fill="%s" fill-opacity="0.15" stroke="none"/>`, upper.String(), lower.String(), col)
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"><title>%s : %s</title></path>`, line.String(), col, html.EscapeString(o.label(c.Name)), o.percent(s*100, 1))
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s" text-anchor="end">%s</text>`, left+pw-4, top+14+14*float64(i), col, html.EscapeString(o.label(c.Name)))
	}
	// Numbers at risk.
	ty := top + ph + 36
	atRisk := o.AtRiskLabel
	if atRisk == "" {
		atRisk = "n"
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-style="italic">%s</text>`, 4.0, ty, html.EscapeString(atRisk))
	for i, c := range curves {
		row := ty + 18*float64(i+1)
		if len(curves) > 1 {
			fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end" fill="%s">%s</text>`, left-4, row, palette[i%len(palette)], html.EscapeString(shortName(o.label(c.Name))))
		}
		for k, t := range c.Ticks {
			if k >= len(c.AtRisk) || t > o.MaxDay {
				break
			}
			v := fmt.Sprint(c.AtRisk[k])
			if c.AtRisk[k] == Masked {
				v = fmt.Sprintf("<%d", o.Threshold)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x(t), row, html.EscapeString(v))
		}
	}
	b.WriteString(`</svg>`)
	_, err := io.WriteString(w, b.String())
	return err
}

func shortName(s string) string {
	if r := []rune(s); len(r) > 8 {
		return string(r[:8]) + "…"
	}
	return s
}
