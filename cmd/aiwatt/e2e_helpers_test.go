package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/e2etest"
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

var update = flag.Bool("update", false, "rewrite golden files")

// binPath is the aiwatt binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "aiwatt-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Chmod(dir, 0o755) // Reachable by the unprivileged user of the permission test.
	binPath = filepath.Join(dir, "aiwatt")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build aiwatt:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is a running `aiwatt agent`.
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

func (p *agentProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

// logs returns what the agent has written to stderr so far.
func (p *agentProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// startAgent runs the binary with args plus a fresh listen address. The
// process is stopped with SIGTERM when the test ends.
func startAgent(t *testing.T, configure func(*exec.Cmd), args ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, addr: freeAddr(t), done: make(chan error, 1)}
	p.cmd = exec.Command(binPath, append([]string{"agent", "--web.listen-address=" + p.addr, "--log.level=debug"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if configure != nil {
		configure(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs())
		}
	})
	return p
}

var volatile = regexp.MustCompile(`^(aiwatt_sample_duration_seconds|aiwatt_last_sample_timestamp_seconds|aiwatt_config_last_reload_success_timestamp_seconds|aiwatt_samples_total)(\{[^}]*\})? `)
var buildInfo = regexp.MustCompile(`^aiwatt_build_info\{.*\} 1$`)

// normalise keeps the aiwatt_ families of an exposition and masks the values
// that change from run to run (durations, timestamps, tick counts, build).
func normalise(body string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		name := line
		if strings.HasPrefix(line, "# ") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			name = f[2]
		}
		if !strings.HasPrefix(name, "aiwatt_") {
			continue
		}
		line = localTarget.ReplaceAllString(line, `target="http://127.0.0.1:PORT/`)
		switch {
		case volatile.MatchString(line):
			line = line[:strings.LastIndexByte(line, ' ')] + " 0"
		case buildInfo.MatchString(line):
			line = `aiwatt_build_info{branch="",goarch="",goos="",goversion="",revision="",tags="",version=""} 1`
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

// compareGolden compares got with the golden file, or rewrites it under -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make update-golden` to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("exposition differs from %s (run `make update-golden` after an intended change)\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// writeUJ writes a raw energy_uj value into a fixture zone.
func writeUJ(t *testing.T, root, zone string, v uint64) {
	t.Helper()
	// Written to a temporary file and renamed over energy_uj, so the running
	// agent reads either the old or the new value, as it would from sysfs,
	// never a truncated file.
	path := filepath.Join(root, "class", "powercap", zone, "energy_uj")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readUJ(t *testing.T, root, zone, file string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "class", "powercap", zone, file))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fakeDCGM serves a real dcgm-exporter capture whose energy counter the test
// advances.
type fakeDCGM struct {
	srv     *httptest.Server
	mu      sync.Mutex
	capture string
	mJ      uint64
	scrapes int
}

var energyLine = regexp.MustCompile(`(?m)^(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION\{[^}]*\}) \d+$`)

// startFakeDCGM serves the L4 GPU Operator capture from dcgm/testdata/captures.
func startFakeDCGM(t *testing.T) *fakeDCGM {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "dcgm", "testdata", "captures", "dcgm_exporter_l4_gpu_operator.prom"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDCGM{capture: string(b), mJ: 4742776}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		body := energyLine.ReplaceAllString(f.capture, "${1} "+strconv.FormatUint(f.mJ, 10))
		f.scrapes++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDCGM) url() string { return f.srv.URL + "/metrics" }

func (f *fakeDCGM) add(mJ uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mJ += mJ
}

func (f *fakeDCGM) scraped() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scrapes
}

// materialize writes a sysfs fixture tree into a temporary directory.
func materialize(t *testing.T, tree string) string {
	t.Helper()
	return sysfsfixture.Materialize(t, tree)
}

// The end-to-end helpers shared with the other end-to-end tests.
var (
	waitFor     = e2etest.WaitFor
	freeAddr    = e2etest.FreeAddr
	scrape      = e2etest.Scrape
	sampleValue = e2etest.SampleValue
)
