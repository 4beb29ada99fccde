// Command gen writes aiwatt's Grafana dashboards as JSON files, one per dashboard.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/inferensys/aiwatt/dashboards"
)

func main() {
	out := flag.String("out", "dashboards/json", "directory to write the dashboards to")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	files, err := dashboards.Render()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
