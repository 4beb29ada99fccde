package test

import (
	"regexp"
	"strings"
	"testing"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	line int    // first line
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile splits a Dockerfile into instructions: comments and blank
// lines dropped, lines ending in a backslash joined to the next.
func parseDockerfile(src string) []dockerInstruction {
	var out []dockerInstruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continuation
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// pinnedImage matches an image reference with an exact version tag: a tag
// with a digit in it (golang:1.26.8-bookworm, debian:bookworm-20260918-slim),
// optionally with a digest. Floating tags (latest, bookworm-slim, 1.26) and
// ARG-substituted references do not match.
var pinnedImage = regexp.MustCompile(`^[a-z0-9./-]+:([A-Za-z0-9_.-]*[0-9][A-Za-z0-9_.-]*)(@sha256:[a-f0-9]{64})?$`)

// dockerStage is one stage of a Dockerfile: its FROM and its instructions.
type dockerStage struct {
	from  dockerInstruction
	image string // the FROM reference: an image or an earlier stage's name
	name  string // AS name, lower case; empty when unnamed
	ins   []dockerInstruction
}

// dockerStages splits instructions into stages.
func dockerStages(ins []dockerInstruction) []*dockerStage {
	var out []*dockerStage
	for _, in := range ins {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := &dockerStage{from: in}
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					st.name = strings.ToLower(fields[i+1])
					i++
				case st.image == "":
					st.image = fields[i]
				}
			}
			out = append(out, st)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].ins = append(out[len(out)-1].ins, in)
		}
	}
	return out
}

// chain is a stage and the earlier stages it is built FROM, the stage first
// and the one FROM an image last.
func chain(stages []*dockerStage, st *dockerStage) []*dockerStage {
	out := []*dockerStage{st}
	for {
		var parent *dockerStage
		for _, s := range stages {
			if s.name != "" && s.name == strings.ToLower(out[len(out)-1].image) && s != out[len(out)-1] {
				parent = s
			}
		}
		if parent == nil {
			return out
		}
		out = append(out, parent)
	}
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(parseDockerfile(string(readRepoFile(t, "Dockerfile"))))
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a multi-stage build", len(stages))
	}
	byName := map[string]*dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
		if byName[strings.ToLower(st.image)] != nil {
			continue // FROM an earlier stage
		}
		image := st.image
		if strings.Contains(image, "$") {
			t.Errorf("line %d: FROM %s: an ARG-substituted image is not pinned in the file", st.from.line, image)
			continue
		}
		m := pinnedImage.FindStringSubmatch(image)
		if m == nil {
			t.Errorf("line %d: FROM %s: pin an exact version tag (e.g. golang:1.26.8-bookworm)", st.from.line, image)
			continue
		}
		// A tag of a major or minor version alone (1.26, 12) still floats.
		if regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(-[a-z]+)?$`).MatchString(m[1]) {
			t.Errorf("line %d: FROM %s: tag %q floats; use a patch release or a dated snapshot", st.from.line, image, m[1])
		}
	}

	// Two images: the default (last) stage copies the binary `make build`
	// wrote (bin/aiwatt, the Prometheus exporters' convention), the "full"
	// stage the one its Go build stage compiled with cgo (NVML is loaded with
	// dlopen).
	full := byName["full"]
	if full == nil {
		t.Fatal("no stage named full (everything built inside docker)")
	}
	targets := map[string]*dockerStage{"default": stages[len(stages)-1], "full": full}
	for what, st := range targets {
		ch := chain(stages, st)
		root := ch[len(ch)-1].image
		if strings.HasPrefix(root, "golang") {
			t.Errorf("%s target: the runtime is a Go toolchain image (%s)", what, root)
		}
		if !strings.Contains(root, "debian") && !strings.Contains(root, "ubuntu") && !strings.Contains(root, "distroless/base") &&
			!strings.Contains(root, "distroless/cc") {
			t.Errorf("%s target: runtime %s: NVML needs a glibc runtime with a dynamic loader", what, root)
		}
		var user, entrypoint, copied string
		labels := map[string]bool{}
		for i := len(ch) - 1; i >= 0; i-- { // base first, so that later stages win
			for _, in := range ch[i].ins {
				switch in.cmd {
				case "USER":
					user = in.args
				case "ENTRYPOINT":
					entrypoint = in.args
				case "COPY":
					if strings.HasSuffix(in.args, "/usr/bin/aiwatt") {
						copied = in.args
					}
				case "LABEL":
					for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z.]+)=`).FindAllStringSubmatch(in.args, -1) {
						labels[m[1]] = true
					}
				}
			}
		}
		switch {
		case what == "default" && !regexp.MustCompile(`(^|\s)bin/aiwatt\s`).MatchString(copied):
			t.Errorf("default target: COPY %q, want bin/aiwatt from `make build`", copied)
		case what == "full" && !strings.Contains(copied, "--from="):
			t.Errorf("full target: COPY %q, want the binary of the build stage", copied)
		}
		if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
			t.Errorf("%s target: USER = %q: the image must default to a non-root user (the DaemonSet overrides it for RAPL)", what, user)
		}
		if !regexp.MustCompile(`^\[\s*"[^"]*/?aiwatt"`).MatchString(entrypoint) {
			t.Errorf("%s target: ENTRYPOINT = %q, want the aiwatt binary in exec form", what, entrypoint)
		}
		for _, l := range []string{"title", "description", "source", "version", "revision", "created", "url"} {
			if !labels["org.opencontainers.image."+l] {
				t.Errorf("%s target: no LABEL org.opencontainers.image.%s", what, l)
			}
		}
	}
	var cgo, built bool
	for _, st := range stages {
		for _, in := range st.ins {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				built = true
				cgo = cgo || strings.Contains(in.args, "CGO_ENABLED=1")
				if strings.Contains(in.args, "CGO_ENABLED=0") {
					t.Errorf("line %d: CGO_ENABLED=0: NVML could not be loaded", in.line)
				}
			}
			if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=1") {
				cgo = true
			}
		}
	}
	if !built || !cgo {
		t.Errorf("go build found %v, with CGO_ENABLED=1 %v", built, cgo)
	}

	// The build context leaves out what the image does not need: bin/aiwatt
	// is the only file of bin/ in it.
	ignore := string(readRepoFile(t, ".dockerignore"))
	for _, p := range []string{".git", "/bin", "!/bin/aiwatt", "/helm"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + `$`).MatchString(ignore) {
			t.Errorf(".dockerignore does not have the line %s", p)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	got := parseDockerfile("# c\nFROM a:1 AS b\n\nRUN x \\\n  # inner\n  y\nUSER 1\n")
	st := dockerStages(got)
	if len(st) != 1 || st[0].image != "a:1" || st[0].name != "b" || len(st[0].ins) != 2 {
		t.Errorf("stages %+v", st)
	}
	want := []dockerInstruction{{2, "FROM", "a:1 AS b"}, {4, "RUN", "x  y"}, {7, "USER", "1"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("instruction %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for img, ok := range map[string]bool{
		"golang:1.26.8-bookworm":        true,
		"debian:bookworm-20260918-slim": true,
		"debian:bookworm-slim":          false,
		"golang:latest":                 false,
		"golang":                        false,
		"golang:1.26.8@sha256:" + strings.Repeat("a", 64): true,
	} {
		if pinnedImage.MatchString(img) != ok {
			t.Errorf("pinned(%s) = %v, want %v", img, !ok, ok)
		}
	}
}
