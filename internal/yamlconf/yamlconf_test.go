package yamlconf

import (
	"strings"
	"testing"
	"time"
)

type ref struct {
	File string `yaml:"file,omitempty"`
	Env  string `yaml:"env,omitempty"`
}

type provider struct {
	Type   string        `yaml:"type"`
	Token  ref           `yaml:"token,omitempty"`
	MaxAge time.Duration `yaml:"max_age,omitempty"`
}

type zone struct {
	Zone      string     `yaml:"zone"`
	Providers []provider `yaml:"providers"`
}

type file struct {
	Zones []zone `yaml:"zones"`
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // substrings, one per expected error line
		forbid    string
	}{
		{"unknown key", "zones:\n  - zone: DE\n    providres: []\n",
			[]string{"c.yml:3: field providres not found"}, ""},
		{"literal secret", "zones:\n  - zone: DE\n    providers:\n      - type: em\n        token: sk_live_abcdefghijk\n",
			[]string{"c.yml:5: cannot unmarshal !!str into yamlconf.ref"}, "sk_live"},
		{"two errors", "zones:\n  - zone: DE\n    providers:\n      - type: em\n        max_age: 5 minutes\n        bogus: 1\n",
			[]string{"c.yml:5: cannot unmarshal !!str into time.Duration", "c.yml:6: field bogus not found"}, "5 minutes"},
		{"syntax", "zones:\n  - zone: DE\n   bad: [\n", []string{"c.yml:"}, ""},
		{"two documents", "zones: []\n---\nzones: []\n", []string{"c.yml:2: only one YAML document is allowed"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f file
			_, err := Decode("c.yml", []byte(tc.src), &f)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d error lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d: %q does not contain %q", i, lines[i], w)
				}
			}
			if tc.forbid != "" && strings.Contains(err.Error(), tc.forbid) {
				t.Fatalf("error echoes the document value %q: %v", tc.forbid, err)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	f := file{Zones: []zone{{Zone: "kept"}}}
	root, err := Decode("c.yml", []byte("# nothing\n"), &f)
	if err != nil || root != nil || f.Zones[0].Zone != "kept" {
		t.Fatalf("root %v, err %v, f %+v", root, err, f)
	}
	if Line(root, "zones[0]") != 1 {
		t.Fatal("Line of a nil root is not 1")
	}
}

func TestLine(t *testing.T) {
	src := `zones:
  - &de
    zone: DE
    providers:
      - type: em
        token: {file: /x}
      - type: static
  - <<: *de
    zone: FR
`
	var f file
	root, err := Decode("c.yml", []byte(src), &f)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Zones) != 2 || f.Zones[1].Zone != "FR" || len(f.Zones[1].Providers) != 2 {
		t.Fatalf("decoded %+v", f)
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"zones", 1},
		{"zones[0]", 2}, // the anchored mapping starts on the "- &de" line
		{"zones[0].zone", 3},
		{"zones[0].providers[1]", 7},
		{"zones[0].providers[0].token", 6},
		{"zones[0].providers[0].max_age", 5}, // absent: the provider's line
		{"zones[1].zone", 9},
		{"zones[1].providers[1].type", 7}, // through the merge key
		{"zones[7].zone", 1},
		{"zones[x]", 1},
		{"nothing", 1},
	} {
		if got := Line(root, tc.path); got != tc.want {
			t.Errorf("Line(%q) = %d, want %d", tc.path, got, tc.want)
		}
	}
}
