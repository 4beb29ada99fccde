package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/inferensys/aiwatt/attribution"
)

const exampleRules = `
pod_labels:
  project: [aiwatt.io/project, app.kubernetes.io/part-of]
rules:
  - name: vllm-service
    match:
      systemd_unit: "vllm*.service"
      cmdline: '--served-model-name (?P<model>\S+)'
    labels:
      project: platform
      model_id: ${model}
      workload_type: inference
  - name: slurm
    match: {slurm_job: "*"}
    labels: {project: hpc, model_id: "job-{{slurm_job}}-{{slurm_step}}", workload_type: training}
  - name: cri-o outside a known pod
    match:
      cgroup: '/crio-[0-9a-f]+\.scope'
      cmdline: '--model-id (\S+)/(\S+)'
    labels: {project: $1, model_id: $2, workload_type: "inference-$$"}
  - name: alice
    match: {user: alice}
    labels: {project: "notebooks-{{uid}}", workload_type: "{{comm}}"}
  - name: docker
    match: {cgroup: '^/(system.slice/)?docker'}
    labels: {workload_type: "container-{{container_id}}"}
`

// decodeRules decodes YAML strictly, as the agent's configuration does.
func decodeRules(t *testing.T, src string) *Rules {
	t.Helper()
	var r Rules
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func compileExample(t *testing.T) *Matcher {
	t.Helper()
	m, err := decodeRules(t, exampleRules).Compile(CompileOptions{Root: filepath.Join("testdata", "rootfs")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fixtureProcs scans the fixture procfs tree once.
func fixtureProcs(t *testing.T) []Process {
	t.Helper()
	res, err := NewScanner(copyTree(t, "proc"), ScannerOptions{ClockTicks: 100}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	return res.Processes
}

func TestMatcherRules(t *testing.T) {
	m := compileExample(t)
	want := map[int]struct {
		key  attribution.Key
		rule int
	}{
		3000: {attribution.Key{Project: "platform", ModelID: "qwen72b", WorkloadType: "inference"}, 0},
		2001: {attribution.Key{Project: "hpc", ModelID: "job-4211-0", WorkloadType: "training"}, 1},
		2002: {attribution.Key{Project: "hpc", ModelID: "job-4212-batch", WorkloadType: "training"}, 1},
		1024: {attribution.Key{Project: "mistralai", ModelID: "Mistral-7B-Instruct-v0.3", WorkloadType: "inference-$"}, 2},
		812:  {attribution.Key{Project: "notebooks-1000", WorkloadType: "python3"}, 3}, // alice's, outside a known pod
		3001: {attribution.Key{Project: "notebooks-1000", WorkloadType: "my (weird) proc"}, 3},
		1100: {attribution.Key{WorkloadType: "container-" + c1100}, 4},
		1200: {attribution.Key{WorkloadType: "container-" + c1200}, 4},
		1:    {attribution.Key{}, -1},
		913:  {attribution.Key{}, -1},
		4000: {attribution.Key{}, -1}, // sealed.service: not vllm*
	}
	for _, p := range fixtureProcs(t) {
		w, ok := want[p.PID]
		if !ok {
			continue
		}
		key, rule := m.Match(p.Info)
		if key != w.key || rule != w.rule {
			t.Errorf("PID %d: rule %d %v, want rule %d %v", p.PID, rule, key, w.rule, w.key)
		}
	}
}

func TestMatcherConditions(t *testing.T) {
	info := &ProcessInfo{Comm: "python", Cmdline: "python serve.py --port 80", UID: 1001,
		Cgroup: Cgroup{Path: "/system.slice/llm@a.service", SystemdUnit: "llm@a.service"}}
	for _, tc := range []struct {
		name  string
		match RuleMatch
		hit   bool
	}{
		{"uid", RuleMatch{User: "1001"}, true},
		{"uid other", RuleMatch{User: "1000"}, false},
		{"user name", RuleMatch{User: "bob"}, true},
		{"unit glob", RuleMatch{SystemdUnit: "llm@*.service"}, true},
		{"unit exact other", RuleMatch{SystemdUnit: "llm.service"}, false},
		{"slurm any without a job", RuleMatch{SlurmJob: "*"}, false},
		{"all must hold", RuleMatch{User: "bob", Cmdline: "serve", Cgroup: "^/system.slice/"}, true},
		{"one fails", RuleMatch{User: "bob", Cmdline: "train"}, false},
		{"anchored", RuleMatch{Cmdline: "^serve"}, false},
	} {
		r := Rules{Rules: []Rule{{Match: tc.match, Labels: RuleLabels{Project: "p"}}}}
		m, err := r.Compile(CompileOptions{Root: filepath.Join("testdata", "rootfs")})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, i := m.Match(info); (i == 0) != tc.hit {
			t.Errorf("%s: matched %v, want %v", tc.name, i == 0, tc.hit)
		}
	}
	slurm := &ProcessInfo{Cgroup: Cgroup{SlurmJob: "42"}, UID: -1}
	for job, hit := range map[string]bool{"42": true, "*": true, "43": false} {
		m, err := (&Rules{Rules: []Rule{{Match: RuleMatch{SlurmJob: job}, Labels: RuleLabels{Project: "x{{uid}}"}}}}).Compile(CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if k, i := m.Match(slurm); (i == 0) != hit || (hit && k.Project != "x") {
			t.Errorf("slurm_job %q: %v %v", job, k, i)
		}
	}
}

func TestRulesValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"bad cmdline regex", `rules:
  - {match: {systemd_unit: a.service}, labels: {project: a}}
  - name: broken
    match: {cmdline: 'vllm ((serve'}
    labels: {project: a}`, []string{"rules[1].match.cmdline: rule 1 (broken): bad regular expression: error parsing regexp: missing closing )"}},
		{"bad cgroup regex", `rules: [{match: {cgroup: '['}, labels: {project: a}}]`, []string{"rules[0].match.cgroup: rule 0: bad regular expression"}},
		{"no condition", `rules: [{labels: {project: a}}]`, []string{"rules[0].match: rule 0: no condition"}},
		{"no label", `rules: [{match: {user: "0"}}]`, []string{"rules[0].labels: rule 0: no label"}},
		{"group out of range", `rules: [{match: {cmdline: '(a)'}, labels: {model_id: $2}}]`, []string{"rules[0].labels.model_id: rule 0: $2 in \"$2\": match.cmdline has 1 capture groups"}},
		{"$1x", `rules: [{match: {cmdline: '(a)'}, labels: {model_id: $1x}}]`, []string{"rules[0].labels.model_id", "write ${1}x"}},
		{"unknown name", `rules: [{match: {cmdline: '(?P<m>a)'}, labels: {model_id: '${model}'}}]`, []string{"${model}", "no group (?P<model>"}},
		{"capture without cmdline", `rules: [{match: {user: "0"}, labels: {project: $1}}]`, []string{"match.cmdline is not set"}},
		{"lone $", `rules: [{match: {user: "0"}, labels: {project: 'a$'}}]`, []string{"write $$ for a literal $"}},
		{"unknown placeholder", `rules: [{match: {user: "0"}, labels: {project: '{{node}}'}}]`, []string{"unknown placeholder {{node}}"}},
		{"unclosed placeholder", `rules: [{match: {user: "0"}, labels: {project: '{{slurm_job'}}]`, []string{"unclosed {{"}},
		{"bad slurm job", `rules: [{match: {slurm_job: job_1}, labels: {project: a}}]`, []string{"rules[0].match.slurm_job", "numeric job ID"}},
		{"bad glob", `rules: [{match: {systemd_unit: '[a'}, labels: {project: a}}]`, []string{"rules[0].match.systemd_unit", "bad glob"}},
		{"bad user", `rules: [{match: {user: 'a b'}, labels: {project: a}}]`, []string{"rules[0].match.user"}},
		{"empty pod label key", `pod_labels: {model_id: [aiwatt.io/model-id, ""]}`, []string{"pod_labels.model_id[1]: bad label or annotation key"}},
		{"several at once", `rules: [{match: {cmdline: '('}}, {labels: {project: a}}]`, []string{"rules[0].match.cmdline", "rules[0].labels", "rules[1].match"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeRules(t, tc.yaml)
			err := r.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || len(fe.Path) == 0 {
				t.Errorf("no *FieldError in %v", err)
			}
			if _, err := r.Compile(CompileOptions{}); err == nil {
				t.Error("Compile accepted what Validate refused")
			}
		})
	}
	if err := (&Rules{}).Validate(); err != nil {
		t.Errorf("zero Rules: %v", err)
	}
	if err := decodeRules(t, exampleRules).Validate(); err != nil {
		t.Errorf("example: %v", err)
	}
}

func TestRulesUnknownFieldRefused(t *testing.T) {
	var r Rules
	dec := yaml.NewDecoder(strings.NewReader("rules: [{match: {cmd: x}, labels: {project: a}}]"))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err == nil || !strings.Contains(err.Error(), "cmd") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

func TestCompileUsers(t *testing.T) {
	rootfs := filepath.Join("testdata", "rootfs")
	r := Rules{Rules: []Rule{{Match: RuleMatch{User: "carol"}, Labels: RuleLabels{Project: "c"}}}}
	_, err := r.Compile(CompileOptions{Root: rootfs})
	if err == nil || !strings.Contains(err.Error(), `user "carol" is not in `+filepath.Join(rootfs, "etc", "passwd")) ||
		!strings.Contains(err.Error(), "rules[0].match.user") {
		t.Errorf("unknown user: %v", err)
	}
	_, err = r.Compile(CompileOptions{Root: t.TempDir()})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing passwd: %v", err)
	}
	users, err := readPasswd(rootfs)
	if err != nil || len(users) != 5 || users["vllm"] != 998 || users["root"] != 0 {
		t.Errorf("passwd: %v %v", users, err)
	}
}

// podsFromFixture decodes the pods of testdata/k8s/pods-node-a.json.
func podsFromFixture(t *testing.T) []*PodMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "k8s", "pods-node-a.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []APIPod `json:"items"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&list); err != nil {
		t.Fatal(err)
	}
	var out []*PodMeta
	for i := range list.Items {
		out = append(out, PodFromAPI(&list.Items[i]))
	}
	return out
}

func TestPodKey(t *testing.T) {
	pods := podsFromFixture(t)
	vllm, train, tgi := pods[0], pods[1], pods[2]
	def := DefaultMatcher()
	if got, want := def.PodKey(vllm, "server"), (attribution.Key{Namespace: "ml", Pod: "vllm-llama-0", Container: "server",
		Project: "search", ModelID: "meta-llama/Llama-3.1-8B-Instruct", WorkloadType: "inference"}); got != want {
		t.Errorf("vllm: %v, want %v", got, want)
	}
	// The annotation wins over the label of the same key; without a
	// mapping, app.kubernetes.io/part-of is not read.
	if got, want := def.PodKey(train, "trainer"), (attribution.Key{Namespace: "train", Pod: "llama-70b-worker-0", Container: "trainer",
		ModelID: "llama-70b-sft", WorkloadType: "finetune"}); got != want {
		t.Errorf("train: %v, want %v", got, want)
	}
	m := compileExample(t)
	if got := m.PodKey(train, "trainer").Project; got != "foundation-models" {
		t.Errorf("mapped project %q", got)
	}
	if got := m.PodKey(vllm, "server").Project; got != "search" {
		t.Errorf("first key must win: %q", got)
	}
	if got := m.PodKey(tgi, ""); got.Project != "" || got.ModelID != "mistralai/Mistral-7B-Instruct-v0.3" || got.Container != "" {
		t.Errorf("tgi: %v", got)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	e := &FieldError{Path: []string{"rules", "3", "labels", "model_id"}, Msg: "m"}
	if e.Error() != "rules[3].labels.model_id: m" {
		t.Errorf("%q", e.Error())
	}
}
