package rapl

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDiscovery(t *testing.T) {
	type want struct {
		dir, socket, name string
		mmio              bool
		maxRange          uint64
	}
	const m, dram, amd = 262143328850, 65712999613, 65532610987
	for _, tc := range []struct {
		tree string
		want []want
	}{
		{"intel-2socket", []want{
			{"intel-rapl:0:0", "0", ZoneCore, false, m},
			{"intel-rapl:0:2", "0", ZoneDRAM, false, dram},
			{"intel-rapl:0", "0", ZonePackage, false, m},
			{"intel-rapl:0:1", "0", ZoneUncore, false, m},
			{"intel-rapl:1:0", "1", ZoneCore, false, m},
			{"intel-rapl:1:2", "1", ZoneDRAM, false, dram},
			{"intel-rapl:1", "1", ZonePackage, false, m},
			{"intel-rapl:1:1", "1", ZoneUncore, false, m},
			{"intel-rapl:2", "", ZonePsys, false, m},
		}},
		{"amd-2socket", []want{
			{"intel-rapl:0:0", "0", ZoneCore, false, amd},
			{"intel-rapl:0", "0", ZonePackage, false, amd},
			{"intel-rapl:1:0", "1", ZoneCore, false, amd},
			{"intel-rapl:1", "1", ZonePackage, false, amd},
		}},
		// Layout C: intel-rapl-mmio:0 duplicates intel-rapl:0 and is dropped.
		{"mmio-duplicate", []want{
			{"intel-rapl:0:0", "0", ZoneCore, false, m},
			{"intel-rapl:0", "0", ZonePackage, false, m},
			{"intel-rapl:a", "10", ZonePackage, false, m},
		}},
		{"mmio-only", []want{
			{"intel-rapl-mmio:0", "0", ZonePackage, true, m},
		}},
		// Layout A: intel-rapl:a is socket 10 (hex), named package-10; intel-rapl (no name) skipped.
		{"procfs", []want{
			{"intel-rapl:0:0", "0", ZoneCore, false, m},
			{"intel-rapl:0", "0", ZonePackage, false, m},
			{"intel-rapl:a", "10", ZonePackage, false, m},
		}},
		{"unreadable", []want{
			{"intel-rapl:0", "0", ZonePackage, false, m},
		}},
		// Multi-die names, a duplicate dram (the first path wins), an unknown kind, dtpm ignored.
		{"edge", []want{
			{"intel-rapl:0:0", "0", ZoneDRAM, false, dram},
			{"intel-rapl:0", "0", ZonePackage, false, m},
			{"intel-rapl:0:2", "0", "widget", false, m},
			{"intel-rapl:1", "1", ZonePackage, false, m},
		}},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			root := fixtureRoot(t, tc.tree)
			mt, err := NewMeter(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, z := range mt.Zones() {
				if filepath.Dir(z.Path) != powercapDir(root) {
					t.Errorf("zone path %s is not under %s", z.Path, powercapDir(root))
				}
				got = append(got, want{filepath.Base(z.Path), z.Socket, z.Name, z.MMIO, z.MaxEnergyRangeUJ})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("zones:\n got %v\nwant %v", got, tc.want)
			}
			// Sample reports the same zones in the same order.
			s := mt.Sample(t0)
			for i, z := range s.Zones {
				if z.Zone != mt.Zones()[i] {
					t.Errorf("Sample.Zones[%d] = %+v, Zones()[%d] = %+v", i, z.Zone, i, mt.Zones()[i])
				}
			}
		})
	}
}

func TestDiscoveryNoData(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"no class/powercap", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "class"))
		}},
		{"empty class/powercap", func(t *testing.T, root string) {
			mkdir(t, powercapDir(root))
		}},
		{"only the intel-rapl control type dir", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(powercapDir(root), "intel-rapl"))
			writeFile(t, filepath.Join(powercapDir(root), "intel-rapl", "enabled"), "1\n")
		}},
		{"dtpm only, no energy files", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(powercapDir(root), "dtpm:0"))
			writeFile(t, filepath.Join(powercapDir(root), "dtpm:0", "name"), "soc\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			m, err := NewMeter(root, Options{})
			if !errors.Is(err, ErrNoData) {
				t.Fatalf("NewMeter = %v, %v; want ErrNoData", m, err)
			}
		})
	}
}

func TestDiscoveryFailures(t *testing.T) {
	t.Run("sysfs root missing", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "nothing")
		_, err := NewMeter(root, Options{})
		if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), root) {
			t.Fatalf("NewMeter = %v; want an error naming %s that is not ErrNoData", err, root)
		}
	})
	t.Run("zone without max_energy_range_uj fails alone", func(t *testing.T) {
		root := copyTree(t, "procfs")
		if err := os.Remove(filepath.Join(powercapDir(root), "intel-rapl:a", "max_energy_range_uj")); err != nil {
			t.Fatal(err)
		}
		m, err := NewMeter(root, Options{})
		if err != nil {
			t.Fatalf("NewMeter = %v; one broken zone must not take the others down", err)
		}
		s := m.Sample(at(0))
		if s.Err != nil || s.Errors[ReasonReadError] != 1 {
			t.Fatalf("Err %v, Errors %v; want only one read_error", s.Err, s.Errors)
		}
		for _, z := range s.Zones {
			broken := filepath.Base(z.Path) == "intel-rapl:a"
			if z.OK == broken || (broken && !strings.Contains(z.Err.Error(), "max_energy_range_uj")) {
				t.Fatalf("zone %s: OK %v, Err %v", z.Path, z.OK, z.Err)
			}
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, w := range []float64{-1, math.NaN(), math.Inf(1)} {
			if _, err := NewMeter(fixtureRoot(t, "procfs"), Options{MaxPowerWatts: w}); err == nil {
				t.Errorf("MaxPowerWatts %v accepted", w)
			}
		}
	})
}

func TestZoneKind(t *testing.T) {
	for in, want := range map[string]string{
		"package-0":       ZonePackage,
		"package-10":      ZonePackage,
		"package-0-die-1": ZonePackage,
		"package":         ZonePackage,
		"core":            ZoneCore,
		"uncore":          ZoneUncore,
		"dram":            ZoneDRAM,
		"psys":            ZonePsys,
		"widget-3":        "widget",
		"two-part-name":   "two-part-name",
		"trailing-":       "trailing-",
		"-5":              "-5",
	} {
		if got := zoneKind(in); got != want {
			t.Errorf("zoneKind(%q) = %q, want %q", in, got, want)
		}
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
