package main

import (
	"math"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// TestEndToEndOnDemand runs the binary with nothing to attribute: it samples
// when scraped, not on its clock, and the counters are exact. Over a quiet
// stretch of four intervals the samples counter moves by the one sample the
// next scrape takes (the clock would have taken four), and a scrape right
// after another is served the same sample.
func TestEndToEndOnDemand(t *testing.T) {
	root := sysfsfixture.Materialize(t, intelFixture)
	const interval = time.Second
	p := startAgent(t, nil, "--path.sysfs="+root, "--path.procfs="+fixtureProc, "--agent.interval="+interval.String())
	url := "http://" + p.addr + "/metrics"
	samples := func() (n, at float64) {
		t.Helper()
		body, err := scrape(nil, url)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := sampleValue(body, "aiwatt_samples_total")
		at, ok2 := sampleValue(body, "aiwatt_last_sample_timestamp_seconds")
		if !ok || !ok2 {
			t.Fatalf("no samples counter or timestamp:\n%s", body)
		}
		return n, at
	}
	waitFor(t, "first sample", 15*time.Second, func() (bool, error) {
		body, err := scrape(nil, url)
		n, _ := sampleValue(body, "aiwatt_samples_total")
		return n >= 1, err
	})
	n0, at0 := samples()
	// The quiet stretch: four intervals with no scrape.
	quiet := time.Unix(0, int64(at0*1e9)).Add(4 * interval)
	time.Sleep(time.Until(quiet)) // time itself is what is tested: nothing to synchronise with
	advance(t, root, intelSteps)
	n1, at1 := samples()
	if n1 != n0+1 {
		t.Fatalf("samples went from %v to %v over four quiet intervals and one scrape; want exactly the scrape's", n0, n1)
	}
	if at1 < at0+4 {
		t.Fatalf("the scrape was served the sample of %v, before the quiet stretch ended (%v)", at1, at0+4)
	}
	if n2, at2 := samples(); (n2 != n1 || at2 != at1) && time.Since(time.Unix(0, int64(at1*1e9))) < interval {
		t.Fatalf("a scrape within an interval of the last sample took a new one (%v at %v, then %v at %v)", n1, at1, n2, at2)
	}
	body, err := scrape(nil, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range intelSteps[:4] {
		if got, _ := sampleValue(body, s.series); math.Abs(got-s.joules) > 1e-9 {
			t.Fatalf("%s = %v, want %v", s.series, got, s.joules)
		}
	}
}
