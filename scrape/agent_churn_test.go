package scrape_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/internal/helperproc"
)

// helperEnv makes the test binary a fake vLLM server listening on
// 127.0.0.1:<port> instead of running the tests. Its scrape n (from 1)
// reports 5·(n−1) requests, 40·(n−1) input and 100·(n−1) output tokens, so
// every count after its first scrape is known to the test.
const helperEnv = "AIWATT_SCRAPE_TEST_FAKE_VLLM"

func TestMain(m *testing.M) { helperproc.Main(m, helperEnv, fakeVLLM) }

// fakeVLLM serves the fake vLLM on 127.0.0.1:port until it is killed.
func fakeVLLM(port string) {
	var n atomic.Int64
	http.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		k := n.Add(1) - 1
		fmt.Fprintf(w, "vllm:request_success_total{finished_reason=\"stop\",model_name=\"m\"} %d\n", 5*k)
		fmt.Fprintf(w, "vllm:prompt_tokens_total{model_name=\"m\"} %d\n", 40*k)
		fmt.Fprintf(w, "vllm:generation_tokens_total{model_name=\"m\"} %d\n", 100*k)
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe("127.0.0.1:"+port, nil))
	os.Exit(1)
}

// fakeServer starts the helper as a process whose command line names it.
func fakeServer(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "aiwatt-fake-vllm")
	cmd.Env = helperproc.Env(helperEnv, fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake server not listening: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling; the dial decides
	}
}

// TestAgentInferenceFollowsRestartsAndLateStart runs the agent against real
// processes on a real port, configured by a loopback URL only: the server
// starts after the agent, then restarts as a new process on the same port.
// Every request and token after each process's first scrape lands on the
// server's workload (named by a rule), and nothing is ever exported under
// empty labels.
func TestAgentInferenceFollowsRestartsAndLateStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg, err := agent.ParseConfig("aiwatt.yml", []byte(fmt.Sprintf(`
workloads:
  rules:
    - name: chat
      match: {cmdline: 'aiwatt-fake-vllm'}
      labels: {project: chat, model_id: m, workload_type: inference}
inference:
  targets:
    - url: http://127.0.0.1:%d/metrics
      server: vllm
`, port)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	a, err := agent.New(agent.Options{Interval: 5 * time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: "/proc", Clock: func() time.Time { return now }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	chat := attribution.Key{Project: "chat", ModelID: "m", WorkloadType: "inference"}
	var want [3]float64 // requests, input, output tokens
	tick := func(served int) {
		t.Helper()
		now = now.Add(5 * time.Second)
		s := a.Tick()
		var got [3]float64
		for _, c := range s.Inference {
			if attribution.Key(c.Key).IsZero() && !c.Unattributed {
				t.Fatalf("exported under empty labels: %+v", c)
			}
			if c.Unattributed && c.Value > 0 {
				t.Fatalf("counts dropped: %+v", c)
			}
			if attribution.Key(c.Key) == chat {
				got[map[string]int{agent.InferenceRequests: 0, agent.InferenceInputTokens: 1, agent.InferenceOutputTokens: 2}[c.Kind]] += c.Value
			}
		}
		want[0], want[1], want[2] = want[0]+5*float64(served), want[1]+40*float64(served), want[2]+100*float64(served)
		if got != want {
			t.Fatalf("requests, input, output tokens: %v, want %v", got, want)
		}
	}
	tick(0) // no server yet
	tick(0)
	first := fakeServer(t, port)
	tick(0) // its first scrape: the baseline
	tick(1)
	tick(1)
	// Restart as a new process on the same port; its counters start over.
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	second := fakeServer(t, port)
	if second.Process.Pid == first.Process.Pid {
		t.Fatal("same PID")
	}
	tick(0) // the new process's first scrape shows 0: a restart adds it whole
	tick(1)
	tick(1)
	if want[0] != 20 { // four scrapes served five requests each
		t.Fatalf("the scenario counted %v requests", want[0])
	}
}
