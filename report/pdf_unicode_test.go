package report

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPDFKeepsNonASCIINames renders a report whose organisation, boundary
// and group labels are German, Polish, Portuguese and Greek, and checks with
// pdftotext that every name comes out of the PDF as written: the embedded
// Unicode font draws them, where the standard Helvetica printed "?".
func TestPDFKeepsNonASCIINames(t *testing.T) {
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext is needed to check the PDF (Debian: apt-get install -y poppler-utils; `make test` installs it)")
	}
	names := []string{
		"Müller GmbH, Zürich",                    // German
		"Zakład Łódź, Gdańsk: zażółć gęślą jaźń", // Polish
		"São Paulo, Conceição & Irmãos",          // Portuguese
		"Αθήνα, Ελληνική Εταιρεία",               // Greek
	}
	r := &Report{
		Title: "aiwatt energy and carbon report", Organisation: names[0], Boundary: names[1] + "; " + names[3],
		From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Groups: []Group{{Project: names[2], ModelID: "llm-α", KPIs: KPIs{ITEnergyKWh: N(12.5)}}},
	}
	r.ByProject = r.Groups
	var buf bytes.Buffer
	if err := RenderPDF(&buf, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pdftotext, path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	// pdftotext may wrap a long line; compare with whitespace collapsed.
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, n := range append(names, "llm-α") {
		if !strings.Contains(text, n) {
			t.Errorf("PDF text lacks %q", n)
		}
	}
	if strings.Contains(text, "M?ller") || strings.Contains(text, "??") {
		t.Errorf("non-ASCII characters replaced by '?':\n%s", text)
	}
	// Characters the font has are kept; one it lacks becomes "?".
	if got := pdfText("CO₂e ≥ 1 → x 漢"); got != "CO₂e ≥ 1 → x ?" {
		t.Errorf("pdfText = %q", got)
	}
}
