package agent

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/kubetest"
)

// TestCarbonZoneFromNode takes the grid zone from the node's cloud region
// through the API server, and says clearly when the node has none.
func TestCarbonZoneFromNode(t *testing.T) {
	api := kubetest.NewAPIServer(t, "node-1", false, nil, 1)
	api.SetNode("node-1", map[string]any{
		"metadata": map[string]any{"name": "node-1", "labels": map[string]any{"topology.kubernetes.io/region": "europe-west4"}},
		"spec":     map[string]any{"providerID": "gce://proj/europe-west4-a/node-1"},
	})
	api.SetNode("node-2", map[string]any{"metadata": map[string]any{"name": "node-2"}, "spec": map[string]any{}})
	kubeconfig := api.WriteKubeconfig(t, filepath.Join(t.TempDir(), "kubeconfig"))
	cfg, err := ParseConfig("aiwatt.yml", []byte("carbon:\n  zone: node\ngpu:\n  backend: none\n"))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	for _, tc := range []struct {
		node, zone, err string
	}{
		{"node-1", "gcp:europe-west4", ""},
		{"node-2", "", "no cloud region"},
	} {
		a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now,
			NodeName: tc.node, Kubeconfig: kubeconfig}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a.work.carbon.zone != tc.zone {
			t.Errorf("%s: zone %q, want %q", tc.node, a.work.carbon.zone, tc.zone)
		}
		if tc.err != "" && (a.work.carbon.err == nil || !strings.Contains(a.work.carbon.err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.node, a.work.carbon.err, tc.err)
		}
		a.Tick()
		clk.step(time.Second)
		s := a.Tick()
		st, _ := status(s, SourceCarbon)
		if st.Up != (tc.err == "") {
			t.Errorf("%s: carbon source up=%v", tc.node, st.Up)
		}
		if tc.err == "" && (len(s.Attribution.Intensity) != 1 || s.Attribution.Intensity[0].Zone != tc.zone) {
			t.Errorf("%s: intensity %+v", tc.node, s.Attribution.Intensity)
		}
		_ = a.Close()
	}
}
