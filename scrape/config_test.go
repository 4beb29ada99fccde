package scrape

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestTargetConfigYAML(t *testing.T) {
	doc := `
- url: http://127.0.0.1:8000
  server: vllm
  timeout: 3s
  workload: {pid: 4242}
- url: http://10.0.0.7:80/metrics
  server: TGI
  model: bigscience/bloom-560m
  body_limit: 1048576
  workload: {namespace: llm, pod: tgi-0}
- url: http://[fd00::7]:8000
  server: trtllm
`
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	var cfgs []TargetConfig
	if err := dec.Decode(&cfgs); err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{ID: "http://127.0.0.1:8000/metrics", URL: "http://127.0.0.1:8000/metrics", Server: ServerVLLM, Timeout: 3 * time.Second},
		{ID: "http://10.0.0.7:80/metrics", URL: "http://10.0.0.7:80/metrics", Server: ServerTGI, Model: "bigscience/bloom-560m", BodyLimit: 1 << 20},
		{ID: "http://[fd00::7]:8000/prometheus/metrics", URL: "http://[fd00::7]:8000/prometheus/metrics", Server: ServerTensorRTLLM},
	}
	for i, c := range cfgs {
		got, err := c.Target()
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got, want[i])
		}
	}
	if cfgs[0].Workload.PID != 4242 || cfgs[1].Workload.Pod != "tgi-0" || cfgs[1].Workload.Namespace != "llm" {
		t.Errorf("workload hints: %+v", cfgs)
	}

	dec = yaml.NewDecoder(strings.NewReader("- url: http://x:1\n  sever: vllm\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfgs); err == nil || !strings.Contains(err.Error(), "sever") {
		t.Fatalf("unknown key accepted: %v", err)
	}
}

func TestTargetConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  TargetConfig
		want []string // substrings of the error; none: valid
	}{
		{TargetConfig{URL: "http://127.0.0.1:8000/metrics"}, nil},
		{TargetConfig{URL: "https://h/metrics", Server: "auto", Timeout: time.Minute}, nil},
		{TargetConfig{}, []string{"url is required"}},
		{TargetConfig{URL: "127.0.0.1:8000"}, []string{"http:// or https://"}},
		{TargetConfig{URL: "unix:///run/x.sock"}, []string{"scheme"}},
		{TargetConfig{URL: "http://"}, []string{"no host"}},
		{TargetConfig{URL: "http://h:99999/"}, []string{"port"}},
		{TargetConfig{URL: "http://u:p@h/"}, []string{"credentials"}},
		{TargetConfig{URL: "http://h/", Server: "ollama"}, []string{`unknown server "ollama"`, "vllm"}},
		{TargetConfig{URL: "http://h/", Timeout: -time.Second}, []string{"timeout"}},
		{TargetConfig{URL: "http://h/", Timeout: time.Hour}, []string{"timeout"}},
		{TargetConfig{URL: "http://h/", BodyLimit: -1}, []string{"body_limit"}},
		{TargetConfig{URL: "http://h/", Model: " m"}, []string{"spaces"}},
		{TargetConfig{URL: "http://h/", Workload: WorkloadHint{Pod: "p"}}, []string{"namespace and pod"}},
		{TargetConfig{URL: "http://h/", Workload: WorkloadHint{Namespace: "n", Pod: "p", PID: 3}}, []string{"set one of"}},
		{TargetConfig{URL: "http://h/", Workload: WorkloadHint{PID: -1}}, []string{"pid"}},
		{TargetConfig{URL: "http://h/", Workload: WorkloadHint{Port: 70000}}, []string{"port 70000"}},
		{TargetConfig{URL: "ftp://h/", Server: "x", Timeout: -1}, []string{"scheme", "server", "timeout"}},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: accepted", c.cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", c.cfg, err, w)
			}
		}
		if !strings.Contains(err.Error(), "scrape target") {
			t.Errorf("error lacks context: %v", err)
		}
		if _, terr := c.cfg.Target(); terr == nil {
			t.Errorf("%+v: Target accepted an invalid config", c.cfg)
		}
	}
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]Server{
		"": ServerAuto, "auto": ServerAuto, "vLLM": ServerVLLM, " sglang ": ServerSGLang, "llama.cpp": ServerLlamaCpp,
		"tensorrt-llm": ServerTensorRTLLM, "TRITON": ServerTriton, "lmdeploy": ServerLMDeploy, "tgi": ServerTGI,
	} {
		if got, err := ParseServer(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, s := range Servers {
		if got, err := ParseServer(string(s)); err != nil || got != s {
			t.Errorf("%q does not round-trip", s)
		}
	}
	if _, err := ParseServer("ollama"); err == nil {
		t.Error("ollama accepted")
	}
}

func TestPodTarget(t *testing.T) {
	cases := []struct {
		name    string
		ip      string
		ann     map[string]string
		want    Target
		ok      bool
		errPart string
	}{
		{name: "not annotated", ip: "10.1.2.3", ann: nil},
		{name: "opted out", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "false", AnnotationPort: "8000"}},
		{name: "vllm defaults", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "vllm"}, ok: true,
			want: Target{ID: "pod/llm/p:8000", URL: "http://10.1.2.3:8000/metrics", Server: ServerVLLM}},
		{name: "port and path", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "True", AnnotationPort: "8002", AnnotationPath: "/custom/metrics"}, ok: true,
			want: Target{ID: "pod/llm/p:8002", URL: "http://10.1.2.3:8002/custom/metrics"}},
		{name: "trtllm path", ip: "fd00::5", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "tensorrt_llm"}, ok: true,
			want: Target{ID: "pod/llm/p:8000", URL: "http://[fd00::5]:8000/prometheus/metrics", Server: ServerTensorRTLLM}},
		{name: "tgi model", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "tgi", AnnotationPort: "80", AnnotationModel: "bigscience/bloom"}, ok: true,
			want: Target{ID: "pod/llm/p:80", URL: "http://10.1.2.3:80/metrics", Server: ServerTGI, Model: "bigscience/bloom"}},
		{name: "auto needs port", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true"}, ok: true, errPart: AnnotationPort},
		{name: "tgi needs port", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "tgi"}, ok: true, errPart: AnnotationPort},
		{name: "bad port", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationPort: "http"}, ok: true, errPart: "not a port"},
		{name: "bad path", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationPort: "1", AnnotationPath: "metrics"}, ok: true, errPart: "absolute path"},
		{name: "bad server", ip: "10.1.2.3", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "ollama"}, ok: true, errPart: "unknown server"},
		{name: "no ip yet", ip: "", ann: map[string]string{AnnotationScrape: "true", AnnotationServer: "vllm"}, ok: true, errPart: "pod IP"},
	}
	for _, c := range cases {
		got, ok, err := PodTarget("llm", "p", c.ip, c.ann)
		if ok != c.ok {
			t.Errorf("%s: ok %v", c.name, ok)
		}
		if c.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), c.errPart) || !strings.Contains(err.Error(), "pod llm/p") {
				t.Errorf("%s: error %v, want one naming the pod and %q", c.name, err, c.errPart)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
}
