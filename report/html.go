package report

import (
	"html/template"
	"io"
)

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.R.Title}}</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#eef3f7}
caption{text-align:left;font-weight:bold;padding:4px 0}
h2{border-bottom:2px solid #2f6f9f;padding-bottom:2px}
</style></head><body>
<h1>{{.R.Title}}</h1>
{{range .Sections}}<section><h2>{{.S.Title}}</h2>
{{range .S.Paragraphs}}<p>{{.}}</p>
{{end}}{{range .Charts}}<figure>{{.}}</figure>
{{end}}{{range .S.Tables}}<table><caption>{{.Caption}}</caption>
<tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{else}}<tr><td colspan="{{len .Header}}">None.</td></tr>
{{end}}</table>
{{end}}</section>
{{end}}</body></html>
`))

type htmlSection struct {
	S      Section
	Charts []template.HTML
}

// RenderHTML writes a self-contained HTML page with inline SVG charts (no
// scripts, no external resources).
func RenderHTML(w io.Writer, r *Report) error {
	var secs []htmlSection
	for _, s := range Sections(r) {
		hs := htmlSection{S: s}
		for _, name := range s.Charts {
			for _, c := range chartsFor(r, name) {
				// The SVG is built by chart.svg, which escapes every text it writes.
				hs.Charts = append(hs.Charts, template.HTML(c.svg())) //nolint:gosec
			}
		}
		secs = append(secs, hs)
	}
	return htmlTmpl.Execute(w, struct {
		R        *Report
		Sections []htmlSection
	}{r, secs})
}
