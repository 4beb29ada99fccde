package rapl

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// fixtureRoot materialises the fixture tree testdata/<tree>.sysfs (see
// internal/sysfsfixture) into a fresh temporary directory and returns its
// sysfs root, whose energy_uj files the test may rewrite.
func fixtureRoot(tb testing.TB, tree string) string {
	tb.Helper()
	return sysfsfixture.Materialize(tb, filepath.Join("testdata", tree+".sysfs"))
}

// copyTree is fixtureRoot: every test gets its own writable copy.
func copyTree(tb testing.TB, tree string) string {
	tb.Helper()
	return fixtureRoot(tb, tree)
}

// powercapDir is class/powercap under a sysfs root.
func powercapDir(root string) string { return filepath.Join(root, "class", "powercap") }

// writeZone creates (or overwrites) a zone directory with the files the meter reads.
func writeZone(tb testing.TB, root, dir, name string, energy, maxRange uint64) {
	tb.Helper()
	p := filepath.Join(powercapDir(root), dir)
	if err := os.MkdirAll(p, 0o755); err != nil {
		tb.Fatal(err)
	}
	for file, content := range map[string]string{
		"name":                name + "\n",
		"energy_uj":           strconv.FormatUint(energy, 10) + "\n",
		"max_energy_range_uj": strconv.FormatUint(maxRange, 10) + "\n",
		"enabled":             "1\n",
	} {
		if err := os.WriteFile(filepath.Join(p, file), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// setEnergy writes v to the energy_uj of zone directory dir under root, as the kernel would show it.
func setEnergy(tb testing.TB, root, dir string, v uint64) {
	tb.Helper()
	writeRaw(tb, root, dir, strconv.FormatUint(v, 10)+"\n")
}

// writeRaw writes content verbatim to the energy_uj of zone directory dir under root.
func writeRaw(tb testing.TB, root, dir, content string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(powercapDir(root), dir, "energy_uj"), []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// readEnergy reads the current energy_uj of zone directory dir under root.
func readEnergy(tb testing.TB, root, dir string) uint64 {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(powercapDir(root), dir, "energy_uj"))
	if err != nil {
		tb.Fatal(err)
	}
	v, err := strconv.ParseUint(string(b[:len(b)-1]), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// zoneByDir finds a zone of a sample by its directory name.
func zoneByDir(tb testing.TB, s Sample, dir string) ZoneEnergy {
	tb.Helper()
	for _, z := range s.Zones {
		if filepath.Base(z.Path) == dir {
			return z
		}
	}
	tb.Fatalf("no zone %s in sample", dir)
	return ZoneEnergy{}
}
