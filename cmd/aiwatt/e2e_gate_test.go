package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/promtest"
)

// TestEndToEndGate runs `aiwatt gate` against a real Prometheus loaded with a
// known history: within budget exits 0, over budget 1, no data 2.
func TestEndToEndGate(t *testing.T) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString("# TYPE aiwatt_workload_energy_joules counter\n")
	for i := 0; i <= 240; i++ { // One hour, 15 s apart, 2 kW: 2 kWh.
		fmt.Fprintf(&b, "aiwatt_workload_energy_joules_total{component=\"gpu\",project=\"vision\",run_id=\"42\"} %d %d\n", i*30000, start.Unix()+int64(i*15))
	}
	b.WriteString("# EOF\n")
	srv := promtest.Start(t, promtest.Options{OpenMetrics: b.String()})
	at := start.Add(time.Hour).Format(time.RFC3339)

	gateRun := func(args ...string) (int, string) {
		cmd := exec.Command(binPath, append([]string{"gate", "--prometheus=" + srv.URL, "--window=1h", "--at=" + at}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	sel := `--selector={project="vision",run_id="42"}`
	if code, out := gateRun(sel, "--budget=3kWh"); code != 0 || !strings.Contains(out, "within budget: 2 kWh used of 3 kWh") {
		t.Fatalf("under budget: exit %d\n%s", code, out)
	}
	if code, out := gateRun(sel, "--budget=1.5kWh", "--format=json"); code != 1 || !strings.Contains(out, `"verdict": "over_budget"`) {
		t.Fatalf("over budget: exit %d\n%s", code, out)
	}
	report := filepath.Join(t.TempDir(), "gate.xml")
	if code, out := gateRun(`--selector={project="vision",run_id="43"}`, "--budget=1kWh", "--format=junit", "--output="+report); code != 2 || !strings.Contains(out, "no data") {
		t.Fatalf("no data: exit %d\n%s", code, out)
	}
	x, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Errors int `xml:"errors,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(x, &suites); err != nil || len(suites.Suites) != 1 || suites.Suites[0].Errors != 1 {
		t.Fatalf("junit report %s: %v", x, err)
	}
	if code, out := gateRun(sel, "--budget=lots"); code != 2 || !strings.Contains(out, "--budget") {
		t.Fatalf("bad budget: exit %d\n%s", code, out)
	}
}
