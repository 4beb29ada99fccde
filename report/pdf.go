package report

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
)

// pdfFont is the family of the embedded Go fonts (BSD licence, from
// golang.org/x/image/font/gofont): TrueType, embedded as a subset, so
// every Latin, Greek and Cyrillic letter of WGL4 prints as itself (Müller,
// Łódź, São Paulo, Αθήνα) and is extracted as itself.
const pdfFont = "Go"

// pdfFonts parses the regular font once, to know which characters it has.
var pdfFonts = sync.OnceValues(func() (*sfnt.Font, error) { return sfnt.Parse(goregular.TTF) })

// pdfText keeps the characters the embedded font can draw (WGL4: Latin,
// Greek, Cyrillic, common symbols); others, such as CJK, become "?".
func pdfText(s string) string {
	f, err := pdfFonts()
	if err != nil {
		return s
	}
	var buf sfnt.Buffer
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == '\t' {
			b.WriteRune(r)
			continue
		}
		if g, err := f.GlyphIndex(&buf, r); err == nil && g != 0 && r >= 32 {
			b.WriteRune(r)
			continue
		}
		b.WriteByte('?')
	}
	return b.String()
}

// addPDFFonts embeds the regular and bold Go fonts.
func addPDFFonts(pdf *fpdf.Fpdf) {
	pdf.AddUTF8FontFromBytes(pdfFont, "", goregular.TTF)
	pdf.AddUTF8FontFromBytes(pdfFont, "B", gobold.TTF)
}

const (
	pdfMargin = 10.0
	pdfPageW  = 297.0 // A4 landscape
	pdfPageH  = 210.0
	pdfPx     = (pdfPageW - 2*pdfMargin) / 720 // mm per chart pixel
)

// RenderPDF writes the report as an A4 landscape PDF with the same sections,
// tables and charts as the HTML. Text is real text (extractable).
func RenderPDF(w io.Writer, r *Report) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	addPDFFonts(pdf)
	pdf.SetCatalogSort(true)
	pdf.SetCreationDate(r.To)
	pdf.SetModificationDate(r.To)
	pdf.SetTitle(pdfText(r.Title), false)
	pdf.SetAuthor("aiwatt", false)
	pdf.SetMargins(pdfMargin, pdfMargin, pdfMargin)
	pdf.SetAutoPageBreak(true, pdfMargin)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-8)
		pdf.SetFont(pdfFont, "", 7)
		pdf.CellFormat(0, 4, pdfText(fmt.Sprintf("%s - %s to %s - page %d/{nb}", r.Title, ts(r.From), ts(r.To), pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pdf.SetFont(pdfFont, "B", 16)
	pdf.CellFormat(0, 9, pdfText(r.Title), "", 1, "L", false, 0, "")
	for _, s := range Sections(r) {
		if pdf.GetY() > pdfPageH-40 {
			pdf.AddPage()
		}
		pdf.Ln(2)
		pdf.SetFont(pdfFont, "B", 12)
		pdf.SetTextColor(47, 111, 159)
		pdf.CellFormat(0, 7, pdfText(s.Title), "B", 1, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont(pdfFont, "", 8.5)
		for _, p := range s.Paragraphs {
			pdf.MultiCell(0, 4, pdfText(p), "", "L", false)
		}
		for _, name := range s.Charts {
			for _, c := range chartsFor(r, name) {
				pdfChart(pdf, c)
			}
		}
		for _, t := range s.Tables {
			pdfTable(pdf, t)
		}
	}
	if err := pdf.Error(); err != nil {
		return err
	}
	return pdf.Output(w)
}

func pdfChart(pdf *fpdf.Fpdf, c chart) {
	h := c.h * pdfPx
	if pdf.GetY()+h > pdfPageH-pdfMargin {
		pdf.AddPage()
	}
	x0, y0 := pdfMargin, pdf.GetY()+1
	X := func(v float64) float64 { return x0 + v*pdfPx }
	Y := func(v float64) float64 { return y0 + v*pdfPx }
	for _, b := range c.bars {
		if b.gap {
			pdf.SetFillColor(235, 235, 235)
			pdf.Rect(X(b.x), Y(b.y), b.w*pdfPx, b.h*pdfPx, "F")
			pdf.ClipRect(X(b.x), Y(b.y), b.w*pdfPx, b.h*pdfPx, false)
			pdf.SetDrawColor(150, 150, 150)
			pdf.SetLineWidth(0.3)
			for d := -b.h * pdfPx; d < b.w*pdfPx; d += 1.5 {
				pdf.Line(X(b.x)+d, Y(b.y)+b.h*pdfPx, X(b.x)+d+b.h*pdfPx, Y(b.y))
			}
			pdf.ClipEnd()
			continue
		}
		pdf.SetFillColor(47, 111, 159)
		pdf.Rect(X(b.x), Y(b.y), b.w*pdfPx, b.h*pdfPx, "F")
	}
	pdf.SetDrawColor(51, 51, 51)
	pdf.SetLineWidth(0.2)
	if c.axisX0 != 0 {
		pdf.Line(X(c.axisX0), Y(c.axisY), X(c.x1), Y(c.axisY))
	}
	if len(c.line) > 1 {
		pdf.SetDrawColor(192, 57, 43)
		pdf.SetLineWidth(0.6)
		for i := 1; i < len(c.line); i++ {
			pdf.Line(X(c.line[i-1][0]), Y(c.line[i-1][1]), X(c.line[i][0]), Y(c.line[i][1]))
		}
	}
	pdf.SetDrawColor(0, 0, 0)
	pdf.SetLineWidth(0.2)
	for _, t := range c.texts {
		size := 9.0
		if t.small {
			size = 7
		}
		pdf.SetFont(pdfFont, "", size)
		s := pdfText(t.s)
		x := X(t.x)
		switch t.anchor {
		case "middle":
			x -= pdf.GetStringWidth(s) / 2
		case "end":
			x -= pdf.GetStringWidth(s)
		}
		pdf.Text(x, Y(t.y), s)
	}
	pdf.SetY(y0 + h + 2)
	pdf.SetFont(pdfFont, "", 8.5)
}

func pdfTable(pdf *fpdf.Fpdf, t Table) {
	const lineH = 3.4
	pdf.SetFont(pdfFont, "B", 8.5)
	pdf.CellFormat(0, 6, pdfText(t.Caption), "", 1, "L", false, 0, "")
	if len(t.Rows) == 0 {
		pdf.SetFont(pdfFont, "", 8)
		pdf.CellFormat(0, 5, "None.", "", 1, "L", false, 0, "")
		return
	}
	size := 7.0
	if len(t.Header) > 10 {
		size = 6.2
	}
	pdf.SetFont(pdfFont, "", size)
	// Column widths: proportional to the longest cell, capped, scaled to the page.
	avail := pdfPageW - 2*pdfMargin
	ws := make([]float64, len(t.Header))
	var sum float64
	for i := range t.Header {
		m := pdf.GetStringWidth(pdfText(t.Header[i])) + 2
		for _, r := range t.Rows {
			if i < len(r) {
				m = max(m, pdf.GetStringWidth(pdfText(r[i]))+2)
			}
		}
		ws[i] = min(m, avail*0.5)
		sum += ws[i]
	}
	for i := range ws {
		ws[i] *= avail / sum
	}
	row := func(cells []string, header bool) {
		style := ""
		if header {
			style = "B"
		}
		pdf.SetFont(pdfFont, style, size)
		lines := make([][]string, len(ws))
		n := 1
		for i := range ws {
			s := ""
			if i < len(cells) {
				s = pdfText(cells[i])
			}
			lines[i] = pdf.SplitText(s, ws[i])
			n = max(n, len(lines[i]))
		}
		h := float64(n)*lineH + 1
		if pdf.GetY()+h > pdfPageH-pdfMargin-4 {
			pdf.AddPage()
		}
		x, y := pdfMargin, pdf.GetY()
		for i, w := range ws {
			if header {
				pdf.SetFillColor(238, 243, 247)
				pdf.Rect(x, y, w, h, "FD")
			} else {
				pdf.Rect(x, y, w, h, "D")
			}
			for j, l := range lines[i] {
				pdf.Text(x+0.8, y+lineH*float64(j+1)-0.4, l)
			}
			x += w
		}
		pdf.SetXY(pdfMargin, y+h)
	}
	pdf.SetDrawColor(190, 190, 190)
	row(t.Header, true)
	for _, r := range t.Rows {
		row(r, false)
	}
	pdf.SetDrawColor(0, 0, 0)
	pdf.Ln(2)
	pdf.SetFont(pdfFont, "", 8.5)
}
