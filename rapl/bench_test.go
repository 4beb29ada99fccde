package rapl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// syntheticRoot builds n package zones (intel-rapl:0 .. intel-rapl:<n-1 in hex>) under a
// temporary sysfs root.
func syntheticRoot(b *testing.B, n int) string {
	b.Helper()
	root := b.TempDir()
	for i := range n {
		writeZone(b, root, fmt.Sprintf("intel-rapl:%x", i), fmt.Sprintf("package-%d", i), 100_000_000_000+uint64(i), 262143328850)
	}
	return root
}

func benchMeterSample(b *testing.B, root string, wantZones int) {
	m, err := NewMeter(root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if got := len(m.Zones()); got != wantZones {
		b.Fatalf("%d zones, want %d", got, wantZones)
	}
	now := time.Unix(1_750_000_000, 0)
	m.Sample(now)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		if s := m.Sample(now); s.Err != nil || len(s.Errors) != 0 {
			b.Fatal(s.Err, s.Errors)
		}
	}
}

// benchBareRead is the floor: os.ReadFile and strconv.ParseUint over the same energy_uj files.
func benchBareRead(b *testing.B, root string, wantZones int) {
	m, err := NewMeter(root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, z := range m.Zones() {
		files = append(files, filepath.Join(z.Path, "energy_uj"))
	}
	if len(files) != wantZones {
		b.Fatalf("%d zones, want %d", len(files), wantZones)
	}
	var sum uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			v, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += v
		}
	}
	if sum == 0 {
		b.Fatal("read nothing")
	}
}

func BenchmarkMeterSample2Sockets(b *testing.B) {
	benchMeterSample(b, fixtureRoot(b, "intel-2socket"), 9)
}

func BenchmarkBareRead2Sockets(b *testing.B) {
	benchBareRead(b, fixtureRoot(b, "intel-2socket"), 9)
}

func BenchmarkMeterSample1000Zones(b *testing.B) {
	benchMeterSample(b, syntheticRoot(b, 1000), 1000)
}

func BenchmarkBareRead1000Zones(b *testing.B) {
	benchBareRead(b, syntheticRoot(b, 1000), 1000)
}
