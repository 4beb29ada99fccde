package test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The chart carries copies of the rule files and dashboards (Helm reads no
// file outside the chart). They must be byte-identical to the repository's.
func TestChartFilesInSyncWithSources(t *testing.T) {
	for _, tc := range []struct{ source, copy string }{
		{"alerts/rules/*.yml", "helm/aiwatt/files/rules/*.yml"},
		{"dashboards/json/*.json", "helm/aiwatt/files/dashboards/*.json"},
	} {
		src, dst := globRepo(t, tc.source), globRepo(t, tc.copy)
		if len(src) == 0 {
			t.Fatalf("no %s", tc.source)
		}
		names := func(paths []string) []string {
			var n []string
			for _, p := range paths {
				n = append(n, filepath.Base(p))
			}
			return n
		}
		if s, d := names(src), names(dst); !slices.Equal(s, d) {
			t.Errorf("%s holds %v but %s holds %v: run make chart-sync", tc.source, s, tc.copy, d)
			continue
		}
		for i := range src {
			a, err := os.ReadFile(src[i])
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(dst[i])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs from %s: run make chart-sync", dst[i], src[i])
			}
		}
	}
}
