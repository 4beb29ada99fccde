package agent

import (
	"strings"
	"testing"
)

// An inference target tied to a workload rule must name a rule that exists.
func TestParseConfigTargetRuleMustExist(t *testing.T) {
	const base = `
workloads:
  rules:
    - name: chat
      match: {cmdline: 'vllm serve'}
      labels: {project: chat}
inference:
  targets:
    - url: http://127.0.0.1:8000/metrics
      workload: {rule: %s}
`
	if _, err := ParseConfig("aiwatt.yml", []byte(strings.Replace(base, "%s", "chat", 1))); err != nil {
		t.Fatalf("a target naming an existing rule: %v", err)
	}
	_, err := ParseConfig("aiwatt.yml", []byte(strings.Replace(base, "%s", "caht", 1)))
	if err == nil || !strings.Contains(err.Error(), `inference.targets[0].workload.rule`) || !strings.Contains(err.Error(), `no workload rule is named "caht"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseConfig("aiwatt.yml", []byte("inference:\n  targets:\n    - url: http://127.0.0.1:8000/metrics\n      workload: {systemd_unit: vllm.service}\n")); err != nil {
		t.Fatalf("a target tied to a unit: %v", err)
	}
}
