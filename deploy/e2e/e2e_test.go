package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inferensys/aiwatt/internal/e2etest"
)

// repoRoot is the repository's root directory (this package is deploy/e2e).
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

func TestMain(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// stops are the cleanups of what the package's tests share (the cluster, the
// image), run after every test.
var stops []func()

func stopShared() {
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// run runs name with args in dir and returns its combined output; a failure
// includes the output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	return out.String(), nil
}

// seriesWith are the lines of body whose metric is name and that contain
// every one of the label pairs.
func seriesWith(body, name string, pairs ...string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, p := range pairs {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// The end-to-end helpers shared with the other end-to-end tests.
var (
	waitFor     = e2etest.WaitFor
	tail        = e2etest.Tail
	sampleValue = e2etest.SampleValue
)

// scrape GETs url over plain HTTP and returns the body.
func scrape(url string) (string, error) { return e2etest.Scrape(nil, url) }
