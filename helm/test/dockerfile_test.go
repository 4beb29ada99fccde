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

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(string(readRepoFile(t, "Dockerfile")))
	var froms []dockerInstruction
	var final []dockerInstruction // instructions of the last stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in)
			final = nil
		}
		final = append(final, in)
	}
	if len(froms) < 2 {
		t.Fatalf("%d FROM lines: want a multi-stage build", len(froms))
	}
	for _, f := range froms {
		fields := strings.Fields(f.args)
		image := fields[0]
		if strings.HasPrefix(image, "--platform") && len(fields) > 1 {
			image = fields[1]
		}
		if strings.Contains(image, "$") {
			t.Errorf("line %d: FROM %s: an ARG-substituted image is not pinned in the file", f.line, image)
			continue
		}
		m := pinnedImage.FindStringSubmatch(image)
		if m == nil {
			t.Errorf("line %d: FROM %s: pin an exact version tag (e.g. golang:1.26.8-bookworm)", f.line, image)
			continue
		}
		// A tag of a major or minor version alone (1.26, 12) still floats.
		if regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(-[a-z]+)?$`).MatchString(m[1]) {
			t.Errorf("line %d: FROM %s: tag %q floats; use a patch release or a dated snapshot", f.line, image, m[1])
		}
	}
	last := froms[len(froms)-1]
	if strings.HasPrefix(last.args, "golang") || strings.Contains(last.args, "golang:") {
		t.Errorf("line %d: the final stage is a Go toolchain image (%s)", last.line, last.args)
	}
	// The build stage compiles with cgo (NVML is loaded with dlopen) and the
	// runtime is glibc-based.
	var cgo, built, copied bool
	for _, in := range ins {
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
	if !built || !cgo {
		t.Errorf("go build found %v, with CGO_ENABLED=1 %v", built, cgo)
	}
	if !strings.Contains(last.args, "debian") && !strings.Contains(last.args, "ubuntu") && !strings.Contains(last.args, "distroless/base") &&
		!strings.Contains(last.args, "distroless/cc") {
		t.Errorf("line %d: final stage %s: NVML needs a glibc runtime with a dynamic loader", last.line, last.args)
	}
	var user, entrypoint string
	labels := map[string]bool{}
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			if strings.Contains(in.args, "--from=") && strings.Contains(in.args, "aiwatt") {
				copied = true
			}
		case "LABEL":
			for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z.]+)=`).FindAllStringSubmatch(in.args, -1) {
				labels[m[1]] = true
			}
		}
	}
	if !copied {
		t.Error("the final stage does not copy the aiwatt binary from the build stage")
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER = %q: the image must default to a non-root user (the DaemonSet overrides it for RAPL)", user)
	}
	if !regexp.MustCompile(`^\[\s*"[^"]*/?aiwatt"`).MatchString(entrypoint) {
		t.Errorf("ENTRYPOINT = %q, want the aiwatt binary in exec form", entrypoint)
	}
	for _, l := range []string{"title", "description", "source", "version", "revision", "created", "url"} {
		if !labels["org.opencontainers.image."+l] {
			t.Errorf("no LABEL org.opencontainers.image.%s", l)
		}
	}

	// The build context leaves out what the image does not need.
	ignore := string(readRepoFile(t, ".dockerignore"))
	for _, p := range []string{".git", "/bin", "/helm"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + `$`).MatchString(ignore) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	got := parseDockerfile("# c\nFROM a:1 AS b\n\nRUN x \\\n  # inner\n  y\nUSER 1\n")
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
