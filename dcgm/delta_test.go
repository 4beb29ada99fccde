package dcgm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestExporterDeltas checks that the deltas of successive samples add up to
// the energy the exporter's counters advanced by, exactly, and that a sample
// served from the MinRefresh cache hands out nothing twice.
func TestExporterDeltas(t *testing.T) {
	orig := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	srv, b := newScripted(t, orig, Config{MinRefresh: 10 * time.Second})
	sum := map[string]uint64{}
	for k, off := range energyOffsets {
		srv.set(addEnergy(t, orig, off))
		for _, dt := range []time.Duration{0, time.Second} { // the second read is inside MinRefresh
			r, err := b.Sample(context.Background(), t0.Add(time.Duration(k)*20*time.Second+dt))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range r.GPUs {
				sum[g.UUID] += uint64(g.Delta)
			}
		}
	}
	if len(sum) == 0 {
		t.Fatal("no GPU")
	}
	for uuid, mj := range sum {
		if mj != energyOffsets[len(energyOffsets)-1] {
			t.Errorf("%s: deltas add up to %d mJ, want %d", uuid, mj, energyOffsets[len(energyOffsets)-1])
		}
	}
}

// TestExporterCountsInvalidValues feeds NaN, negative and absurd energy
// values: each is dropped and counted as invalid_value, never silently.
func TestExporterCountsInvalidValues(t *testing.T) {
	orig := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	for _, bad := range []string{"NaN", "-5", "1e30", "+Inf"} {
		t.Run(bad, func(t *testing.T) {
			body := rewriteValues(t, orig, func(m string, v float64) (float64, bool) { return 0, false })
			var lines []string
			n := 0
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{") {
					l = l[:strings.LastIndexByte(l, ' ')+1] + bad
					n++
				}
				lines = append(lines, l)
			}
			if n == 0 {
				t.Fatal("capture has no energy row")
			}
			_, b := newScripted(t, strings.Join(lines, "\n"), Config{})
			r, _ := b.Sample(context.Background(), t0)
			if r.Errors[ReasonInvalidValue] != uint64(n) {
				t.Fatalf("errors %v, want %d invalid_value", r.Errors, n)
			}
		})
	}
}

// TestExporterMIGSlices checks that the dcgm-exporter backend reports the
// slice count of a MIG GPU from its model: the A30 capture, and the same
// rows relabelled as the other MIG-capable data-centre GPUs.
func TestExporterMIGSlices(t *testing.T) {
	orig := readFixture(t, "a30_mig_issue317.prom")
	for _, c := range []struct {
		model string
		want  int
	}{
		{"NVIDIA A30", 4},
		{"NVIDIA A100-SXM4-80GB", 7},
		{"NVIDIA H100 80GB HBM3", 7},
		{"NVIDIA H200", 7},
		{"NVIDIA B200", 7},
	} {
		t.Run(c.model, func(t *testing.T) {
			body := strings.ReplaceAll(orig, `modelName="NVIDIA A30"`, `modelName="`+c.model+`"`)
			_, b := newScripted(t, body, Config{})
			r, err := b.Sample(context.Background(), t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range r.GPUs {
				if g.MIGMode != MIGModeEnabled || g.MIGSlices != c.want {
					t.Fatalf("GPU %s: MIG %s, %d slices; want enabled, %d", g.UUID, g.MIGMode, g.MIGSlices, c.want)
				}
			}
		})
	}
}
