package sysfsfixture

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseAndWrite(t *testing.T) {
	entries, err := Parse([]byte("# c\nclass/powercap/intel-rapl:0/name = package-0\nclass/powercap/intel-rapl:0/uevent =\nclass/empty/\n"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := Write(root, entries); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"class/powercap/intel-rapl:0/name": "package-0\n", "class/powercap/intel-rapl:0/uevent": "\n"} {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "class/empty")); err != nil || !fi.IsDir() {
		t.Errorf("class/empty: %v", err)
	}
}

func TestParseRefusesBadLines(t *testing.T) {
	for _, in := range []string{"no separator here", "/abs/path = 1", "../escape = 1", " = 1"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}
