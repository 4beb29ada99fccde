package agent

import (
	"testing"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
)

// TestSnapshotCO2eByKey: each workload gets the grams of its own key from
// the CO2e ledgers, both when their snapshots list the workloads in the
// energy ledger's order (as the agent's ledgers do) and when they do not
// (a key only one ledger holds shifts the order).
func TestSnapshotCO2eByKey(t *testing.T) {
	kA := attribution.Key{Project: "a"}
	kB := attribution.Key{Project: "b"}
	kEarly := attribution.Key{Namespace: "0"} // sorts before kA and kB
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	part := func(j float64, keys ...attribution.Key) []attribution.Result {
		r := attribution.Result{ID: "cpu", Component: attribution.CPU}
		for i, k := range keys {
			r.Workloads = append(r.Workloads, attribution.Part{Key: k, Joules: j * float64(i+1)})
		}
		return []attribution.Result{r}
	}
	for _, shifted := range []bool{false, true} {
		w := &workloadSource{carbon: &carbonSource{calc: &carbon.Calculator{}}}
		for _, l := range []**attribution.Ledger{&w.energy, &w.co2Loc, &w.co2Mkt, &w.co2Marg} {
			var err error
			if *l, err = attribution.NewLedger(attribution.LedgerOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		w.energy.Add(now, part(10, kA, kB))
		w.co2Mkt.Add(now, part(2, kA, kB))
		if shifted {
			w.co2Loc.Add(now, part(1, kEarly, kA, kB)) // kA 2 g, kB 3 g
		} else {
			w.co2Loc.Add(now, part(1, kA, kB)) // kA 1 g, kB 2 g
		}
		got := map[attribution.Key][2]float64{}
		for _, we := range w.snapshot().Workloads {
			got[attribution.Key(we.Key)] = [2]float64{we.CO2eLocation, we.CO2eMarket}
		}
		want := map[attribution.Key][2]float64{kA: {1, 2}, kB: {2, 4}}
		if shifted {
			want = map[attribution.Key][2]float64{kA: {2, 2}, kB: {3, 4}}
		}
		if len(got) != 2 || got[kA] != want[kA] || got[kB] != want[kB] {
			t.Errorf("shifted=%v: %v, want %v", shifted, got, want)
		}
	}
}
