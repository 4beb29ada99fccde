package rapl

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMeterRediscoversHotPlug adds a zone, then a whole socket, to a fixture tree while the
// meter runs, and checks that each appears within Options.Rediscover samples with exact deltas;
// a zone that loses max_energy_range_uj fails alone while the others keep serving.
func TestMeterRediscoversHotPlug(t *testing.T) {
	const every = 3
	root := t.TempDir()
	writeZone(t, root, "intel-rapl:0", "package-0", 1_000, 262143328850)
	m := newMeter(t, root, Options{Rediscover: every})

	sec := 0.0
	sample := func() Sample {
		s := m.Sample(at(sec))
		sec++
		return s
	}
	deltas := map[string]uint64{}
	ticksUntil := func(dir string) int {
		t.Helper()
		for n := 1; n <= every; n++ {
			s := sample()
			for _, z := range s.Zones {
				deltas[filepath.Base(z.Path)] += uint64(z.Delta)
				if filepath.Base(z.Path) == dir {
					return n
				}
			}
		}
		t.Fatalf("zone %s not found within %d samples", dir, every)
		return 0
	}
	sample() // baseline of intel-rapl:0

	// A DRAM zone of socket 0 appears.
	writeZone(t, root, "intel-rapl:0:0", "dram", 50, 65712999613)
	ticksUntil("intel-rapl:0:0")
	// A whole second socket appears.
	writeZone(t, root, "intel-rapl:1", "package-1", 7, 262143328850)
	writeZone(t, root, "intel-rapl:1:0", "dram", 9, 65712999613)
	ticksUntil("intel-rapl:1")

	// Every zone is now known and primed; the new ones count from their baseline, exactly.
	clear(deltas)
	add := map[string]uint64{"intel-rapl:0": 40_000_000, "intel-rapl:0:0": 3_000_000, "intel-rapl:1": 25_000_123, "intel-rapl:1:0": 2_000_001}
	for dir, d := range add {
		setEnergy(t, root, dir, readEnergy(t, root, dir)+d)
	}
	s := sample()
	if s.Err != nil || len(s.Errors) != 0 || len(s.Zones) != 4 {
		t.Fatalf("Err %v, Errors %v, %d zones", s.Err, s.Errors, len(s.Zones))
	}
	for _, z := range s.Zones {
		if dir := filepath.Base(z.Path); uint64(z.Delta) != add[dir] {
			t.Fatalf("%s: delta %d µJ, want %d", dir, z.Delta, add[dir])
		}
	}

	// One zone loses max_energy_range_uj: it fails alone (read_error), the others serve.
	if err := os.Remove(filepath.Join(powercapDir(root), "intel-rapl:1", "max_energy_range_uj")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(powercapDir(root), "extra"), nil, 0o644); err != nil {
		t.Fatal(err) // A listing change triggers the re-read.
	}
	var broken bool
	for n := 0; n < every && !broken; n++ {
		s = sample()
		for _, z := range s.Zones {
			broken = broken || (filepath.Base(z.Path) == "intel-rapl:1" && !z.OK)
		}
	}
	if !broken {
		t.Fatalf("intel-rapl:1 still served without max_energy_range_uj")
	}
	setEnergy(t, root, "intel-rapl:0", readEnergy(t, root, "intel-rapl:0")+1_000_000)
	s = sample()
	if s.Err != nil || s.Errors[ReasonReadError] != 1 {
		t.Fatalf("Err %v, Errors %v; want one read_error", s.Err, s.Errors)
	}
	for _, z := range s.Zones {
		dir := filepath.Base(z.Path)
		if z.OK == (dir == "intel-rapl:1") {
			t.Fatalf("%s: OK %v (%v)", dir, z.OK, z.Err)
		}
		if dir == "intel-rapl:0" && z.Delta != 1_000_000 {
			t.Fatalf("intel-rapl:0 delta %d after the other zone broke", z.Delta)
		}
	}
}
