package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/e2etest"
)

// aiwattBin is the aiwatt binary built once for the test.
var aiwattBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aiwatt-fleet-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aiwattBin = filepath.Join(dir, "aiwatt")
	build := exec.Command("go", "build", "-o", aiwattBin, "../../cmd/aiwatt")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build aiwatt:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// thanosBinary is the Thanos binary scripts/thanos.sh built:
// $AIWATT_THANOS, else the one of the script's version under .cache/thanos/.
func thanosBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AIWATT_THANOS"); p != "" {
		return p
	}
	out, err := exec.Command(filepath.Join("..", "..", "scripts", "thanos.sh"), "--print-path").Output()
	if err != nil {
		t.Fatalf("scripts/thanos.sh --print-path: %v", err)
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Thanos binary at %s: run `make fleet-deps` (scripts/thanos.sh builds it from its Go module) or set AIWATT_THANOS", p)
	}
	return p
}

// proc is a process the test started; it is stopped when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// start runs bin with args in dir; its log is printed if the test fails.
func start(t testing.TB, name, dir, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (last 4 KiB):\n%s", name, tail(p.log(), 4096))
		}
	})
	return p
}

// stop ends the process with SIGTERM (SIGKILL after 15 s) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitReady polls url until it answers 200, failing early if p exits.
func waitReady(t testing.TB, p *proc, url string) {
	t.Helper()
	waitFor(t, p.name+" ready at "+url, 90*time.Second, func() (bool, error) {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.name, tail(p.log(), 4096))
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("status %d", resp.StatusCode)
	})
}

// query runs an instant query against an engine's Prometheus API and
// returns the series' labels and values, and the warnings.
func query(ctx context.Context, base, q string, at time.Time) ([]sample, []string, error) {
	form := url.Values{"query": {q}}
	if !at.IsZero() {
		form.Set("time", strconv.FormatInt(at.Unix(), 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query", bytes.NewBufferString(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status   string   `json:"status"`
		Error    string   `json:"error"`
		Warnings []string `json:"warnings"`
		Data     struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("query %s at %s: %w", q, base, err)
	}
	if r.Status != "success" {
		return nil, nil, fmt.Errorf("query %s at %s: %s", q, base, r.Error)
	}
	var out []sample
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("query %s at %s: value %v", q, base, s.Value[1])
		}
		out = append(out, sample{s.Metric, v})
	}
	return out, r.Warnings, nil
}

// sample is one series of an instant query's result.
type sample struct {
	labels map[string]string
	value  float64
}

// The end-to-end helpers shared with the other end-to-end tests.
var (
	waitFor  = e2etest.WaitFor
	tail     = e2etest.Tail
	freeAddr = e2etest.FreeAddr
)
