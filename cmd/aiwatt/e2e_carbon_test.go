package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/carbon"
)

// startCarbonService runs `aiwatt carbon` with args plus a fresh listen
// address; it is stopped with SIGTERM when the test ends.
func startCarbonService(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, addr: freeAddr(t), done: make(chan error, 1)}
	p.cmd = exec.Command(binPath, append([]string{"carbon", "--web.listen-address=" + p.addr, "--log.level=debug"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil && !t.Failed() {
				t.Errorf("aiwatt carbon did not stop cleanly: %v\n%s", err, p.logs())
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("aiwatt carbon ignored SIGTERM")
		}
		if t.Failed() {
			t.Logf("aiwatt carbon log:\n%s", p.logs())
		}
	})
	return p
}

// runCarbonOnce runs `aiwatt carbon --once` and returns stdout, stderr and
// the exit status.
func runCarbonOnce(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"carbon", "--once"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// promtoolCheck lints an exposition with `promtool check metrics`.
func promtoolCheck(t *testing.T, exposition string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: `make test` installs it (Debian package prometheus); the exposition must pass `promtool check metrics`")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition\n%s", err, out, exposition)
	}
}

func writeCarbonConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "carbon.yml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEndToEndCarbonOnce(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCarbonOnce(t, "--zone=DE")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"zone         DE\n", "basis        location\n", "provider     static\n", "source       Ember/OWID\n",
		"licence      CC-BY-4.0\n", "factor type  lifecycle\n", "method       annual average\n", "skipped      none (the first provider answered)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code = runCarbonOnce(t, "--zone=aws:eu-central-1", "--at=2023-06-01T00:00:00Z", "--format=json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var resp carbon.IntensityResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	in := resp.Intensity
	if resp.Zone != "aws:eu-central-1" || in.Value != 311 || !in.ValidFrom.Equal(mustRFC3339(t, "2023-01-01T00:00:00Z")) ||
		in.Provenance.Source != "Cloud Carbon Footprint" || in.Provenance.Licence != "Apache-2.0" || in.Provenance.FactorType != carbon.FactorDirect {
		t.Fatalf("response %+v", resp)
	}

	_, errOut, code = runCarbonOnce(t, "--zone=XX")
	if code != 1 || !strings.Contains(errOut, "XX is not in the embedded static table") {
		t.Fatalf("unknown zone: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runCarbonOnce(t)
	if code != 2 || !strings.Contains(errOut, "give --zone") {
		t.Fatalf("no zone: exit %d\n%s", code, errOut)
	}

	// A provider refusing the key: the static table answers and the output
	// says why Electricity Maps was skipped; the key appears nowhere.
	const key = "em-once-key-never-shown"
	em := startFakeElectricityMaps(t, "another-key")
	cfg := writeCarbonConfig(t, emServiceConfig(em.srv.URL, writeTokenFile(t, key)))
	out, errOut, code = runCarbonOnce(t, "--config.file="+cfg, "--zone=US-CAR-DUK", "--log.level=debug")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "provider     static\n") || !strings.Contains(out, "source zone  US\n") ||
		!strings.Contains(out, "skipped      electricitymaps: authentication failed (retry after 1m0s)\n") {
		t.Fatalf("output:\n%s", out)
	}
	if strings.Contains(out+errOut, key) {
		t.Fatalf("the key leaked:\n%s\n%s", out, errOut)
	}
	_, errOut, code = runCarbonOnce(t, "--config.file="+cfg)
	if code != 2 || !strings.Contains(errOut, "serves several zones (US-CAR-DUK, DE); choose one with --zone") {
		t.Fatalf("several zones: exit %d\n%s", code, errOut)
	}

	// No provider at all has a value: exit 1 with every reason.
	cfg = writeCarbonConfig(t, "zones:\n  - zone: CAISO_NORTH\n    providers:\n      - type: electricitymaps\n        base_url: "+em.srv.URL+
		"\n        token: {file: "+writeTokenFile(t, key)+"}\n")
	_, errOut, code = runCarbonOnce(t, "--config.file="+cfg)
	if code != 1 || !strings.Contains(errOut, "no provider has a usable location intensity for zone CAISO_NORTH") ||
		!strings.Contains(errOut, "electricitymaps: authentication failed") || !strings.Contains(errOut, "static: unknown zone") || strings.Contains(errOut, key) {
		t.Fatalf("exit %d\n%s", code, errOut)
	}

	// Bad configuration: file, line and reason.
	cfg = writeCarbonConfig(t, "zones:\n  - zone: DE\n    providers:\n      - type: electricitymaps\n        token: "+key+"\n")
	_, errOut, code = runCarbonOnce(t, "--config.file="+cfg, "--zone=DE")
	if code != 1 || !strings.Contains(errOut, cfg+":5: cannot unmarshal !!str into carbon.SecretRef") || strings.Contains(errOut, key[:7]) {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

// TestEndToEndCarbonService runs the service against a fake Electricity Maps
// serving the recorded /latest response, with the key in a file: it scrapes
// /metrics (promtool-clean) and the JSON API, reads it with carbon.Remote,
// then revokes the key upstream (the service reports the provider down and
// keeps serving the cached value), rotates the file, and checks that the
// next refresh uses the new key and that no key ever reaches the logs,
// metrics or API.
func TestEndToEndCarbonService(t *testing.T) {
	t.Parallel()
	const key1, key2 = "em-e2e-key-one-never-shown", "em-e2e-key-two-never-shown"
	em := startFakeElectricityMaps(t, key1)
	tokenFile := writeTokenFile(t, key1)
	cfg := writeCarbonConfig(t, `zones:
  - zone: US-CAR-DUK
    retry_interval: 50ms
    providers:
      - type: electricitymaps
        base_url: `+em.srv.URL+`
        token: {file: `+tokenFile+`}
`)
	p := startCarbonService(t, "--config.file="+cfg, "--carbon.interval=100ms")
	base := "http://" + p.addr
	var bodies []string
	metrics := func() (string, error) {
		b, err := scrape(nil, base+"/metrics")
		bodies = append(bodies, b)
		return b, err
	}
	const emSeries = `aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="electricitymaps",zone="US-CAR-DUK"}`
	const upSeries = `aiwatt_source_up{provider="electricitymaps",source="carbon",zone="US-CAR-DUK"}`
	var body string
	waitFor(t, "the Electricity Maps value in /metrics", 20*time.Second, func() (bool, error) {
		var err error
		body, err = metrics()
		v, ok := sampleValue(body, emSeries)
		return ok && v == 216, err
	})
	promtoolCheck(t, body)
	for _, want := range []string{
		`aiwatt_grid_carbon_intensity_age_seconds{basis="location",provider="electricitymaps",zone="US-CAR-DUK"}`,
		upSeries + " 1", `aiwatt_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}

	apiGetURL := func(url string, out any) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		bodies = append(bodies, buf.String())
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, buf.String())
		}
		return resp.StatusCode
	}
	var resp carbon.IntensityResponse
	if code := apiGetURL(base+"/api/v1/intensity?zone=US-CAR-DUK", &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	if resp.Intensity.Value != 216 || resp.Intensity.Provider != "electricitymaps" || resp.Intensity.Provenance.Source != "Electricity Maps" ||
		!resp.Intensity.ValidFrom.Equal(mustRFC3339(t, "2024-03-06T19:00:00Z")) || !resp.Cached {
		t.Fatalf("response %+v", resp)
	}
	var e carbon.IntensityErrorResponse
	if code := apiGetURL(base+"/api/v1/intensity?zone=DE", &e); code != 404 {
		t.Fatalf("unknown zone: %d %+v", code, e)
	}

	// A node agent's Remote provider reads the running service.
	r, err := carbon.NewRemote(carbon.RemoteOptions{HTTPOptions: carbon.HTTPOptions{BaseURL: base}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Intensity(context.Background(), "US-CAR-DUK", time.Now())
	if err != nil || in.Provider != "electricitymaps" || in.Value != 216 || !containsString(in.Provenance.Notes, "via aiwatt carbon at "+base) {
		t.Fatalf("remote: %v %s %v", err, in, in.Provenance.Notes)
	}

	// The key is revoked upstream: the provider is reported down, with the
	// reason counted, while the last value is served from the cache.
	em.set(key2, 0, "")
	waitFor(t, "electricitymaps down with an auth error", 20*time.Second, func() (bool, error) {
		body, err := metrics()
		up, ok := sampleValue(body, upSeries)
		n, _ := sampleValue(body, `aiwatt_source_errors_total{provider="electricitymaps",reason="auth",source="carbon",zone="US-CAR-DUK"}`)
		return ok && up == 0 && n >= 1, err
	})
	resp = carbon.IntensityResponse{}
	if code := apiGetURL(base+"/api/v1/intensity?zone=US-CAR-DUK", &resp); code != 200 || resp.Intensity.Provider != "electricitymaps" ||
		!hasNotePrefix(resp.Intensity.Provenance.Notes, "served from cache; refresh failed: authentication failed") {
		t.Fatalf("cached value during the outage: %d %+v", code, resp.Intensity.Provenance)
	}

	// The Secret is rotated (atomically, as the kubelet does): the next
	// refresh uses the new key.
	tmp := tokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(key2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tokenFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refresh with the rotated key", 20*time.Second, func() (bool, error) {
		body, err := metrics()
		up, ok := sampleValue(body, upSeries)
		return em.answered(key2) && ok && up == 1, err
	})
	waitFor(t, "the rotation in the log", 5*time.Second, func() (bool, error) {
		return strings.Contains(p.logs(), "secret changed; using the new value"), nil
	})
	for _, s := range append(bodies, p.logs()) {
		if strings.Contains(s, key1) || strings.Contains(s, key2) || strings.Contains(s, "never-shown") {
			t.Fatalf("a key leaked:\n%s", s)
		}
	}
}

func hasNotePrefix(notes []string, prefix string) bool {
	for _, n := range notes {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
