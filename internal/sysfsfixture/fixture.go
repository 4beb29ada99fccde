// Package sysfsfixture materialises sysfs fixture trees for tests and
// benchmarks. A tree is stored as a text file rather than as a directory
// because real sysfs names such as intel-rapl:0 contain a colon, which Go
// module archives refuse: a module holding such paths could not be fetched
// with `go install …@version`.
//
// The format is one entry per line, relative to the sysfs root:
//
//	# a comment
//	class/powercap/intel-rapl:0/name = package-0
//	class/powercap/intel-rapl:0/uevent =
//	class/powercap/empty-dir/
//
// "PATH = CONTENT" writes CONTENT plus a newline (an empty CONTENT writes an
// empty file); "PATH/" creates a directory. Nothing else is allowed.
package sysfsfixture

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Entry is one file or directory of a tree.
type Entry struct {
	// Path is relative to the sysfs root, with forward slashes.
	Path string
	// Content is the file's content without the trailing newline.
	Content string
	// Dir marks a directory.
	Dir bool
}

// Parse reads a tree description.
func Parse(data []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "/") && !strings.Contains(line, " = ") && !strings.HasSuffix(line, " =") {
			out = append(out, Entry{Path: strings.TrimSuffix(line, "/"), Dir: true})
			continue
		}
		path, content, ok := strings.Cut(line, " =")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"PATH = CONTENT\" or \"PATH/\", got %q", n, line)
		}
		path = strings.TrimSpace(path)
		if path == "" || strings.HasPrefix(path, "/") || strings.Contains(path, "..") {
			return nil, fmt.Errorf("line %d: bad path %q", n, path)
		}
		out = append(out, Entry{Path: path, Content: strings.TrimSpace(content)})
	}
	return out, sc.Err()
}

// Write creates the entries under root.
func Write(root string, entries []Entry) error {
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		if e.Dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(e.Content+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Materialize writes the tree described by file into a fresh temporary
// directory and returns that sysfs root. Tests may rewrite its files.
func Materialize(tb testing.TB, file string) string {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatalf("fixture: %v", err)
	}
	entries, err := Parse(data)
	if err != nil {
		tb.Fatalf("fixture %s: %v", file, err)
	}
	root := filepath.Join(tb.TempDir(), "sys")
	if err := Write(root, entries); err != nil {
		tb.Fatalf("fixture %s: %v", file, err)
	}
	return root
}

// Synthetic writes a powercap tree of sockets × package, core, uncore and
// dram zones (named as the kernel names them, intel-rapl:<hex>[:n]) into a
// fresh temporary directory and returns its sysfs root. Benchmarks use it for
// scale: 250 sockets make 1000 zones.
func Synthetic(tb testing.TB, sockets int) string {
	tb.Helper()
	var entries []Entry
	for s := range sockets {
		zones := []struct{ dir, name string }{
			{fmt.Sprintf("intel-rapl:%x", s), fmt.Sprintf("package-%d", s)},
			{fmt.Sprintf("intel-rapl:%x:0", s), "core"},
			{fmt.Sprintf("intel-rapl:%x:1", s), "uncore"},
			{fmt.Sprintf("intel-rapl:%x:2", s), "dram"},
		}
		for i, z := range zones {
			dir := "class/powercap/" + z.dir + "/"
			entries = append(entries,
				Entry{Path: dir + "name", Content: z.name},
				Entry{Path: dir + "energy_uj", Content: strconv.FormatUint(100_000_000_000+uint64(s*4+i)*1_000_003, 10)},
				Entry{Path: dir + "max_energy_range_uj", Content: "262143328850"},
				Entry{Path: dir + "enabled", Content: "1"},
			)
		}
	}
	root := filepath.Join(tb.TempDir(), "sys")
	if err := Write(root, entries); err != nil {
		tb.Fatalf("synthetic fixture: %v", err)
	}
	return root
}
