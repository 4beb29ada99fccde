// Package promtest starts a real Prometheus (Debian's prometheus package) on
// 127.0.0.1 for tests: either over TSDB blocks made from OpenMetrics history
// with `promtool tsdb create-blocks-from openmetrics`, or scraping targets
// with rule files loaded. Tests get a base URL and the server is stopped when
// the test ends. Nothing is mocked: queries go through Prometheus's own HTTP
// API.
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running Prometheus.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Dir is the server's working directory (data, config).
	Dir string

	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
}

// Options configure Start.
type Options struct {
	// OpenMetrics is history to load as TSDB blocks before start (ending in "# EOF").
	OpenMetrics string
	// Config is prometheus.yml; empty means an empty configuration.
	Config string
	// RuleFiles are copied into the server's directory and listed in the
	// configuration's rule_files (Config must not list its own then).
	RuleFiles []string
	// Args are extra command-line flags.
	Args []string
	// MaxBlockDuration, when set, is passed to promtool as
	// --max-block-duration so that a long history becomes a few large blocks
	// instead of one per 2h (a month: seconds instead of a minute or more).
	MaxBlockDuration time.Duration
}

// Binaries returns the paths of prometheus and promtool, or an error saying
// how to install them.
func Binaries() (prometheus, promtool string, err error) {
	prometheus, err1 := exec.LookPath("prometheus")
	promtool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		return "", "", fmt.Errorf("prometheus and promtool are needed (Debian: apt-get install -y prometheus; `make test` installs them)")
	}
	return prometheus, promtool, nil
}

// Start runs Prometheus for the test and waits until it is ready.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	prom, promtool, err := Binaries()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		tb.Fatal(err)
	}
	if opts.OpenMetrics != "" {
		in := filepath.Join(dir, "history.om")
		if err := os.WriteFile(in, []byte(opts.OpenMetrics), 0o644); err != nil {
			tb.Fatal(err)
		}
		args := []string{"tsdb", "create-blocks-from", "openmetrics"}
		if opts.MaxBlockDuration > 0 {
			args = append(args, fmt.Sprintf("--max-block-duration=%dm", int(opts.MaxBlockDuration.Minutes())))
		}
		out, err := exec.Command(promtool, append(args, in, data)...).CombinedOutput()
		if err != nil {
			tb.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
		}
	}
	cfg := opts.Config
	if len(opts.RuleFiles) > 0 {
		var names []string
		for i, rf := range opts.RuleFiles {
			b, err := os.ReadFile(rf)
			if err != nil {
				tb.Fatal(err)
			}
			name := filepath.Join(dir, fmt.Sprintf("rules-%d.yml", i))
			if err := os.WriteFile(name, b, 0o644); err != nil {
				tb.Fatal(err)
			}
			names = append(names, fmt.Sprintf("  - %q", name))
		}
		cfg = "rule_files:\n" + strings.Join(names, "\n") + "\n" + cfg
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	s := &Server{URL: "http://" + addr, Dir: dir}
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + data,
		"--storage.tsdb.retention.time=100y",
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
	}, opts.Args...)
	s.bin, s.args = prom, args
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("prometheus log:\n%s", s.Logs())
		}
	})
	s.launch(tb)
	return s
}

// launch starts the process and waits until it is ready.
func (s *Server) launch(tb testing.TB) {
	tb.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			tb.Fatalf("prometheus exited before it was ready:\n%s", s.Logs())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("prometheus not ready after 60s:\n%s", s.Logs())
		}
		time.Sleep(50 * time.Millisecond) // Poll interval; readiness decides.
	}
}

// Stop ends the server (SIGINT, then SIGKILL after 15 s) and waits for it;
// the test's cleanup does the same. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Restart starts a stopped server again on the same address, data and
// configuration, and waits until it is ready.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.launch(tb)
}

// Write collects the server's log.
func (s *Server) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.Write(b)
}

// Logs returns what Prometheus has logged so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Reload asks Prometheus to re-read its configuration.
func (s *Server) Reload(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("reload: %s: %s", resp.Status, b)
	}
	return nil
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
