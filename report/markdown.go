package report

import (
	"fmt"
	"io"
	"strings"
)

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// RenderMarkdown writes the report as Markdown (charts as tables of points).
func RenderMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, s := range Sections(r) {
		fmt.Fprintf(&b, "## %s\n\n", s.Title)
		for _, p := range s.Paragraphs {
			fmt.Fprintf(&b, "%s\n\n", p)
		}
		for _, c := range s.Charts {
			if c == "trend" && len(r.Trend) > 0 {
				fmt.Fprintf(&b, "**Trend per %s** (facility energy and location-based CO2e; gap: a data gap in the step)\n\n| end | facility kWh | kg CO2e | gap |\n| --- | --- | --- | --- |\n", r.TrendStep)
				for _, p := range r.Trend {
					gap := ""
					if p.Gap {
						gap = "gap"
					}
					fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", ts(p.End), p.FacilityEnergyKWh.Human(), p.CO2eLocationKg.Human(), gap)
				}
				b.WriteString("\n")
			}
		}
		for _, t := range s.Tables {
			fmt.Fprintf(&b, "**%s**\n\n", t.Caption)
			if len(t.Rows) == 0 {
				b.WriteString("None.\n\n")
				continue
			}
			cells := make([]string, len(t.Header))
			for i, h := range t.Header {
				cells[i] = mdCell(h)
			}
			fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(cells, " | "), strings.Repeat(" --- |", len(t.Header)))
			for _, row := range t.Rows {
				for i := range row {
					row[i] = mdCell(row[i])
				}
				fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
