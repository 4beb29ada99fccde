package rapl

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
)

// TestParseCPULineMatchesProcfs parses the real 4-vCPU capture both ways:
// the light first-line parser the model samples with, and
// github.com/prometheus/procfs (seconds at USER_HZ 100), which it replaced.
func TestParseCPULineMatchesProcfs(t *testing.T) {
	root := filepath.Join("testdata", "proc-4cpu")
	raw, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	busy, total, err := parseCPULine(raw)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.Stat()
	if err != nil {
		t.Fatal(err)
	}
	c := st.CPUTotal
	wantBusy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ // steal is neither busy nor idle
	wantTotal := wantBusy + c.Idle + c.Iowait
	if math.Abs(busy/100-wantBusy) > 1e-9 || math.Abs(total/100-wantTotal) > 1e-9 {
		t.Errorf("busy %v total %v ticks; procfs says %v and %v s", busy, total, wantBusy, wantTotal)
	}
}

func TestParseCPULine(t *testing.T) {
	cases := []struct {
		in          string
		busy, total float64
		ok          bool
	}{
		{"cpu  10 2 3 100 5 1 1 4 7 0\ncpu0 1 2 3 4\n", 17, 122, true}, // steal (4) and guest (7) left out
		{"cpu  10 2 3 100\n", 15, 115, true},                           // an old kernel: four fields
		{"cpu  10 2 3\n", 0, 0, false},
		{"cpu  10 x 3 100\n", 0, 0, false},
		{"cpu0 10 2 3 100\n", 0, 0, false},
		{"cpu  10 2 3 100", 0, 0, false}, // cut before the newline
		{"", 0, 0, false},
	}
	for _, c := range cases {
		busy, total, err := parseCPULine([]byte(c.in))
		if (err == nil) != c.ok || busy != c.busy || total != c.total {
			t.Errorf("parseCPULine(%q) = %v, %v, %v; want %v, %v, ok %v", c.in, busy, total, err, c.busy, c.total, c.ok)
		}
	}
}
