package rapl

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

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

// benchBareRead is the floor: the meter's system calls (open, read, close)
// and strconv.ParseUint over the same energy_uj files, nothing else. An
// strace of both shows 9 openat, 9 read and 9 close per 2-socket sample.
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
	sysfsfixture.BenchReadRaw(b, files)
}

func BenchmarkMeterSample2Sockets(b *testing.B) {
	benchMeterSample(b, fixtureRoot(b, "intel-2socket"), 9)
}

func BenchmarkBareRead2Sockets(b *testing.B) {
	benchBareRead(b, fixtureRoot(b, "intel-2socket"), 9)
}

func BenchmarkMeterSample1000Zones(b *testing.B) {
	benchMeterSample(b, sysfsfixture.Synthetic(b, 250), 1000)
}

func BenchmarkBareRead1000Zones(b *testing.B) {
	benchBareRead(b, sysfsfixture.Synthetic(b, 250), 1000)
}
