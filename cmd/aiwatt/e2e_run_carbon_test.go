package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/carbon"
)

// TestRunTakesTheAgentsCarbonConfig runs `aiwatt run --config.file` with an
// agent configuration whose carbon section reads an `aiwatt carbon` service
// (a fake on 127.0.0.1): the run's CO2e uses that provider's intensity and
// zone, not the static table. Contradicting flags and a file without a
// carbon section are usage errors.
func TestRunTakesTheAgentsCarbonConfig(t *testing.T) {
	var asked atomic.Int32
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != carbon.IntensityAPIPath || r.URL.Query().Get("zone") != "FR" || r.URL.Query().Get("basis") != "location" {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		now := time.Now().UTC()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(carbon.IntensityResponse{Zone: "FR", At: now, Intensity: carbon.Intensity{
			Zone: "FR", Value: 777, ValidFrom: now.Add(-time.Minute), ValidTo: now.Add(time.Hour), Basis: carbon.BasisLocation,
			Provider: "electricitymaps", Provenance: carbon.Provenance{Source: "test service", Method: "measured"}}})
	}))
	defer svc.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfg, []byte("rapl:\n  max_power_watts: 1000\ncarbon:\n  zone: FR\n  providers:\n    - type: aiwatt\n      base_url: "+svc.URL+"\n  market:\n    supplier_factor_g_per_kwh: 100\n    supplier_source: test contract\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run.json")
	cmd := exec.Command(binPath, "run", "--interval=50ms", "--path.sysfs="+t.TempDir(), "--gpu.backend=none",
		"--config.file="+cfg, "--out="+out, "--", "true")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aiwatt run: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Carbon struct {
			Zone      string           `json:"zone"`
			Intensity carbon.Intensity `json:"intensity"`
			Market    *json.RawMessage `json:"market"`
		} `json:"carbon"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Carbon.Zone != "FR" || rep.Carbon.Intensity.Value != 777 || rep.Carbon.Intensity.Provenance.Source != "test service" || rep.Carbon.Market == nil {
		t.Fatalf("carbon %+v (market %v)", rep.Carbon.Intensity, rep.Carbon.Market != nil)
	}
	if asked.Load() == 0 {
		t.Fatal("the configured provider was never asked")
	}

	noCarbon := filepath.Join(dir, "nocarbon.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(noCarbon, []byte("rapl:\n  max_power_watts: 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("carbon:\n  zone: FR\n  providers:\n    - type: ukci\n    - type: carbonapi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--config.file=" + cfg, "--zone=DE"}, "--zone and --config.file"},
		{[]string{"--config.file=" + cfg, "--market-factor=50"}, "carbon.market already sets"},
		{[]string{"--config.file=" + noCarbon}, "no carbon: section"},
		{[]string{"--config.file=" + bad}, bad + ":5: carbon"},
	} {
		argv := append(append([]string{"run", "--gpu.backend=none"}, tc.args...), "--", "true")
		b, err := exec.Command(binPath, argv...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), tc.msg) {
			t.Errorf("%v: %v, want exit 2 with %q\n%s", tc.args, err, tc.msg, b)
		}
	}
}
