package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Charts are drawn once as geometry (bars, lines, labels) and written as
// inline SVG for HTML or with PDF drawing calls, so both show the same.

type bar struct {
	x, y, w, h float64
	gap        bool // drawn hatched: no data or a data gap
}

type chart struct {
	title      string
	w, h       float64
	bars       []bar
	line       [][2]float64 // polyline points (CO2e)
	texts      []chartText
	axisY      float64
	axisX0, x1 float64
}

type chartText struct {
	x, y   float64
	s      string
	anchor string // start, middle, end
	small  bool
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// trendChart: bars of facility energy per step, CO2e as a line on its own
// scale; steps with no data or a gap are hatched.
func trendChart(r *Report) chart {
	c := chart{title: fmt.Sprintf("Facility energy (bars, kWh) and location-based CO2e (line, kg) per %s", r.TrendStep), w: 720, h: 260}
	left, right, top, bottom := 60.0, 60.0, 30.0, 40.0
	pw, ph := c.w-left-right, c.h-top-bottom
	var maxE, maxC float64
	for _, p := range r.Trend {
		maxE = math.Max(maxE, p.FacilityEnergyKWh.Float())
		maxC = math.Max(maxC, p.CO2eLocationKg.Float())
	}
	maxE, maxC = niceMax(maxE), niceMax(maxC)
	n := float64(max(len(r.Trend), 1))
	bw := pw / n
	c.axisY, c.axisX0, c.x1 = top+ph, left, left+pw
	for i, p := range r.Trend {
		x := left + float64(i)*bw
		if !p.FacilityEnergyKWh.Valid() {
			c.bars = append(c.bars, bar{x: x + bw*0.1, y: top, w: bw * 0.8, h: ph, gap: true})
			continue
		}
		h := p.FacilityEnergyKWh.Float() / maxE * ph
		c.bars = append(c.bars, bar{x: x + bw*0.1, y: top + ph - h, w: bw * 0.8, h: h})
		if p.Gap {
			c.bars = append(c.bars, bar{x: x + bw*0.1, y: top, w: bw * 0.8, h: ph - h, gap: true})
		}
		if p.CO2eLocationKg.Valid() {
			c.line = append(c.line, [2]float64{x + bw/2, top + ph - p.CO2eLocationKg.Float()/maxC*ph})
		}
	}
	c.texts = append(c.texts,
		chartText{x: left - 4, y: top + 4, s: Sig(maxE, 3) + " kWh", anchor: "end", small: true},
		chartText{x: left - 4, y: top + ph, s: "0", anchor: "end", small: true},
		chartText{x: left + pw + 4, y: top + 4, s: Sig(maxC, 3) + " kg", anchor: "start", small: true},
		chartText{x: c.w / 2, y: 16, s: c.title, anchor: "middle"},
	)
	if len(r.Trend) > 0 {
		c.texts = append(c.texts,
			chartText{x: left, y: top + ph + 14, s: r.Trend[0].End.Format("2006-01-02"), anchor: "start", small: true},
			chartText{x: left + pw, y: top + ph + 14, s: r.Trend[len(r.Trend)-1].End.Format("2006-01-02"), anchor: "end", small: true},
			chartText{x: c.w / 2, y: top + ph + 30, s: "hatched: no data or a gap in the data in that step (missing, never zero)", anchor: "middle", small: true},
		)
	}
	return c
}

// topModelsChart: horizontal bars of facility energy by model.
func topModelsChart(r *Report) chart {
	rows := float64(max(len(r.TopModels), 1))
	c := chart{title: "Top models by facility energy (MWh)", w: 720, h: 50 + rows*24}
	left, right, top := 180.0, 80.0, 30.0
	pw := c.w - left - right
	var mx float64
	for _, g := range r.TopModels {
		mx = math.Max(mx, g.FacilityEnergyMWh.Float())
	}
	mx = niceMax(mx)
	c.texts = append(c.texts, chartText{x: c.w / 2, y: 16, s: c.title, anchor: "middle"})
	for i, g := range r.TopModels {
		y := top + float64(i)*24
		w := g.FacilityEnergyMWh.Float() / mx * pw
		c.bars = append(c.bars, bar{x: left, y: y, w: w, h: 18, gap: !g.FacilityEnergyMWh.Valid()})
		c.texts = append(c.texts,
			chartText{x: left - 6, y: y + 13, s: label(g.ModelID), anchor: "end", small: true},
			chartText{x: left + w + 6, y: y + 13, s: g.FacilityEnergyMWh.Human() + " MWh", anchor: "start", small: true})
	}
	return c
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

// svg writes the chart as an inline SVG element (no scripts).
func (c chart) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" role="img" aria-label="%s">`,
		f1(c.w), f1(c.h), f1(c.w), f1(c.h), html.EscapeString(c.title))
	b.WriteString(`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="2"/></pattern></defs>`)
	for _, br := range c.bars {
		fill := "#2f6f9f"
		if br.gap {
			fill = "url(#hatch)"
		}
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`, f1(br.x), f1(br.y), f1(br.w), f1(br.h), fill)
	}
	if c.axisX0 != 0 {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333"/>`, f1(c.axisX0), f1(c.axisY), f1(c.x1), f1(c.axisY))
	}
	if len(c.line) > 1 {
		pts := make([]string, len(c.line))
		for i, p := range c.line {
			pts[i] = f1(p[0]) + "," + f1(p[1])
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#c0392b" stroke-width="2"/>`, strings.Join(pts, " "))
	}
	for _, t := range c.texts {
		size := 12
		if t.small {
			size = 10
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s" font-size="%d" text-anchor="%s" font-family="sans-serif">%s</text>`, f1(t.x), f1(t.y), size, t.anchor, html.EscapeString(t.s))
	}
	b.WriteString("</svg>")
	return b.String()
}

func chartsFor(r *Report, name string) []chart {
	switch name {
	case "trend":
		return []chart{trendChart(r)}
	case "top_models":
		return []chart{topModelsChart(r)}
	}
	return nil
}
