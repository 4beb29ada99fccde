package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/inferensys/aiwatt/report"
)

// reportsOn enables the CronJob with every option that changes its shape.
const reportsOn = `
reports:
  enabled: true
  prometheusURL: http://prometheus-operated.monitoring.svc:9090
  httpConfig: {existingSecret: aiwatt-prometheus}
  formats: [json, pdf]
  extraArgs: ["--ledger=none"]
  output: {persistentVolumeClaim: {claimName: aiwatt-reports}}
  nodeSelector: {pool: batch}
  tolerations: [{key: batch, operator: Exists, effect: NoSchedule}]
  config:
    organisation: Example AG
    boundary: operational control, cluster gpu-prod
    pue: 1.2
    pue_source: facility meter 2025 annual
    functional_unit: output_token
    grid_share_percent: 80
    market_instruments: {note: GoOs for 40% of DE load, renewable_share_percent: 40}
    targets:
      - {kpi: co2e_location_t, baseline_year: 2025, baseline_value: 120, target_year: 2030, target_value: 60}
    training_runs:
      - {model_id: llama-ft, gpus: 64}
`

// reportsContainer returns the CronJob and its only container.
func reportsContainer(t *testing.T, r *rendered) (*batchv1.CronJob, corev1.Container) {
	t.Helper()
	cj := one[*batchv1.CronJob](t, r, "CronJob", "aiwatt-reports")
	cs := cj.Spec.JobTemplate.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers in the report pod, want 1", len(cs))
	}
	return cj, cs[0]
}

func TestReportsDisabledByDefault(t *testing.T) {
	r := render(t, renderOpts{})
	if n := len(r.all("CronJob")); n != 0 {
		t.Errorf("%d CronJobs rendered by default; want none", n)
	}
	if r.has("ConfigMap", "aiwatt-reports") {
		t.Error("the report ConfigMap is rendered by default")
	}
}

func TestReportsCronJob(t *testing.T) {
	r := render(t, renderOpts{values: reportsOn})
	cj, c := reportsContainer(t, r)
	spec := cj.Spec
	if spec.Schedule != "0 6 1 * *" || spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("schedule %q, concurrencyPolicy %q", spec.Schedule, spec.ConcurrencyPolicy)
	}
	if spec.SuccessfulJobsHistoryLimit == nil || *spec.SuccessfulJobsHistoryLimit != 3 ||
		spec.FailedJobsHistoryLimit == nil || *spec.FailedJobsHistoryLimit != 3 {
		t.Errorf("history limits %v, %v, want 3, 3", spec.SuccessfulJobsHistoryLimit, spec.FailedJobsHistoryLimit)
	}
	if b := spec.JobTemplate.Spec.BackoffLimit; b == nil || *b != 2 {
		t.Errorf("backoffLimit = %v, want 2", b)
	}
	pod := spec.JobTemplate.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q", pod.RestartPolicy)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken = %v, want false", pod.AutomountServiceAccountToken)
	}
	if pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Error("the report pod shares a host namespace")
	}
	if pod.NodeSelector["pool"] != "batch" || pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 {
		t.Errorf("nodeSelector %v, tolerations %+v", pod.NodeSelector, pod.Tolerations)
	}

	// Non-root, read-only root filesystem, nothing added.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 ||
		psc.FSGroup == nil || *psc.FSGroup != 65534 {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot, user 65534, fsGroup 65534", psc)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no container securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65534:
		t.Errorf("container runs as %v (runAsNonRoot %v), want 65534", sc.RunAsUser, sc.RunAsNonRoot)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}

	// Volumes: the claim at /reports, an emptyDir at /tmp, the ConfigMap
	// and the http_config Secret read-only; nothing from the host.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	if v := vols["reports"]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "aiwatt-reports" {
		t.Errorf("reports volume = %+v, want the claim aiwatt-reports", v)
	}
	if v := vols["tmp"]; v.EmptyDir == nil {
		t.Errorf("tmp volume = %+v, want an emptyDir", v)
	}
	if v := vols["config"]; v.ConfigMap == nil || v.ConfigMap.Name != "aiwatt-reports" {
		t.Errorf("config volume = %+v", v)
	}
	if v := vols["prometheus-http-config"]; v.Secret == nil || v.Secret.SecretName != "aiwatt-prometheus" {
		t.Errorf("http config volume = %+v", v)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath", m.Name)
		}
	}
	for name, want := range map[string]corev1.VolumeMount{
		"reports":                {Name: "reports", MountPath: "/reports"},
		"tmp":                    {Name: "tmp", MountPath: "/tmp"},
		"config":                 {Name: "config", MountPath: "/etc/aiwatt/reports", ReadOnly: true},
		"prometheus-http-config": {Name: "prometheus-http-config", MountPath: "/etc/aiwatt/prometheus", ReadOnly: true},
	} {
		if got := mounts[name]; got.Name != want.Name || got.MountPath != want.MountPath || got.ReadOnly != want.ReadOnly {
			t.Errorf("mount %s = %+v, want %+v", name, mounts[name], want)
		}
	}

	// The flags the wrapper passes on to aiwatt report.
	wantArgs := []string{
		"--prometheus=http://prometheus-operated.monitoring.svc:9090",
		"--prometheus.http-config-file=/etc/aiwatt/prometheus/http-config.yml",
		"--config=/etc/aiwatt/reports/report.yml",
		"--format=json,pdf",
		"--resolution=15m",
		"--timeout=5m",
		"--ledger=none",
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q\nwant %q", c.Args, wantArgs)
	}
	if len(c.Command) != 4 || c.Command[0] != "/bin/sh" || c.Command[1] != "-c" {
		t.Errorf("command = %q, want /bin/sh -c SCRIPT NAME", c.Command)
	}

	// The configuration file is valid for `aiwatt report` and carries the values.
	cm := one[*corev1.ConfigMap](t, r, "ConfigMap", "aiwatt-reports")
	cfg := loadReportConfig(t, cm.Data["report.yml"])
	if cfg.Organisation != "Example AG" || cfg.PUE != 1.2 || cfg.FunctionalUnit != "output_token" ||
		*cfg.GridSharePercent != 80 || *cfg.MarketInstruments.RenewableSharePercent != 40 ||
		len(cfg.Targets) != 1 || cfg.Targets[0].KPI != "co2e_location_t" ||
		len(cfg.TrainingRuns) != 1 || cfg.TrainingRuns[0].GPUs != 64 {
		t.Errorf("report configuration not carried through:\n%s\n%+v", cm.Data["report.yml"], cfg)
	}
}

// The defaults beside enabled and the URL: an emptyDir for the output, no
// http_config, every format, and an empty configuration that the report
// package accepts.
func TestReportsDefaults(t *testing.T) {
	r := render(t, renderOpts{values: "reports: {enabled: true, prometheusURL: http://prometheus:9090}"})
	cj, c := reportsContainer(t, r)
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	for _, v := range pod.Volumes {
		switch v.Name {
		case "reports":
			if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.String() != "1Gi" {
				t.Errorf("reports volume = %+v, want an emptyDir of 1Gi", v)
			}
		case "prometheus-http-config":
			t.Error("http config Secret mounted without reports.httpConfig.existingSecret")
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--prometheus.http-config-file") {
			t.Errorf("args %q set an http config file", c.Args)
		}
	}
	if !slices.Contains(c.Args, "--format=json,csv,md,html,pdf") {
		t.Errorf("args %q lack every format", c.Args)
	}
	if got := strings.Join(report.Formats, ","); got != "json,csv,md,html,pdf" {
		t.Errorf("aiwatt report's formats are now %s: update reports.formats and the schema", got)
	}
	cm := one[*corev1.ConfigMap](t, r, "ConfigMap", "aiwatt-reports")
	if cfg := loadReportConfig(t, cm.Data["report.yml"]); cfg.PUE != 1 || cfg.LocationLabel != "cluster" {
		t.Errorf("default report configuration = %+v", cfg)
	}
	if !strings.Contains(r.notes, "create job --from=cronjob/aiwatt-reports") || !strings.Contains(r.notes, "emptyDir") {
		t.Errorf("NOTES do not tell how to run a report or warn about the emptyDir:\n%s", r.notes)
	}
}

// loadReportConfig checks a rendered report.yml with the report package's
// own loader (strict YAML and validation), as `aiwatt report --config` does.
func loadReportConfig(t *testing.T, data string) *report.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.yml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := report.LoadConfig(path)
	if err != nil {
		t.Fatalf("report.LoadConfig: %v\n%s", err, data)
	}
	return cfg
}

// A CronJob's name is at most 52 characters.
func TestReportsNameLength(t *testing.T) {
	long := strings.Repeat("a", 50) + "-aiwatt"
	r := render(t, renderOpts{values: "fullnameOverride: " + long + "\nreports: {enabled: true, prometheusURL: http://p:9090}"})
	for _, o := range r.all("CronJob") {
		if len(o.name) > 52 || !strings.HasSuffix(o.name, "-reports") {
			t.Errorf("CronJob name %q (%d characters): want at most 52, ending in -reports", o.name, len(o.name))
		}
	}
}

// The wrapper runs for real: the rendered command and args, with the
// container's environment, a fake aiwatt on PATH that prints its
// arguments, and AIWATT_REPORT_NOW standing in for the clock.
func TestReportsWrapperComputesThePeriod(t *testing.T) {
	if out, err := exec.Command("date", "--version").Output(); err != nil || !strings.Contains(string(out), "GNU coreutils") {
		t.Fatalf("GNU date (coreutils), as in the image, is needed to run the wrapper: %v", err)
	}
	bin := t.TempDir()
	fake := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"
	if err := os.WriteFile(filepath.Join(bin, "aiwatt"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	// run executes the container's command and args and returns what
	// aiwatt was called with, after "report".
	run := func(t *testing.T, period string, env ...string) ([]string, error) {
		t.Helper()
		_, c := reportsContainer(t, render(t, renderOpts{values: "reports: {enabled: true, prometheusURL: http://p:9090, period: " + period + "}"}))
		script := c.Command[2]
		// The kubelet expands $(NAME) of a declared variable, and $$, in command and args.
		if strings.Contains(script, "$$") {
			t.Errorf("the script holds $$, which the kubelet turns into $")
		}
		cmdEnv := []string{"PATH=" + bin + ":/usr/bin:/bin"}
		for _, e := range c.Env {
			if strings.Contains(script, "$("+e.Name+")") {
				t.Errorf("the script holds $(%s), which the kubelet expands", e.Name)
			}
			cmdEnv = append(cmdEnv, e.Name+"="+e.Value)
		}
		cmd := exec.Command(c.Command[0], append(slices.Clone(c.Command[1:]), c.Args...)...)
		cmd.Env = append(cmdEnv, env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%w: %s", err, stderr.String())
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(got) < 7 || got[0] != "report" {
			t.Fatalf("aiwatt called with %q", got)
		}
		if !slices.Equal(got[7:], c.Args) {
			t.Errorf("aiwatt got %q after the period, want the container's args %q", got[7:], c.Args)
		}
		return got[1:7], nil
	}

	for _, tc := range []struct {
		period, now   string
		from, to, dir string
	}{
		{"previousMonth", "2026-03-01T06:00:00Z", "2026-02-01", "2026-03-01", "2026-02"},
		{"previousMonth", "2026-01-01T06:00:00Z", "2025-12-01", "2026-01-01", "2025-12"},
		{"previousMonth", "2024-03-31T23:59:59Z", "2024-02-01", "2024-03-01", "2024-02"},
		{"previousMonth", "2026-03-01", "2026-02-01", "2026-03-01", "2026-02"},
		{"previousDay", "2026-03-01T06:00:00Z", "2026-02-28", "2026-03-01", "2026-02-28"},
		{"previousDay", "2024-03-01T00:30:00Z", "2024-02-29", "2024-03-01", "2024-02-29"},
		{"previousWeek", "2026-01-05T06:00:00Z", "2025-12-29", "2026-01-05", "2026-W01"}, // a Monday
		{"previousWeek", "2026-03-01T06:00:00Z", "2026-02-16", "2026-02-23", "2026-W08"}, // a Sunday
	} {
		t.Run(tc.period+" "+tc.now, func(t *testing.T) {
			want := []string{"--from", tc.from, "--to", tc.to, "--out", "/reports/" + tc.dir}
			// UTC, and a zone 14 hours ahead (a POSIX TZ, no tzdata
			// needed) in which it is already the next day: the period is
			// computed in UTC either way.
			for _, tz := range []string{"UTC", "XYZ-14"} {
				got, err := run(t, tc.period, "TZ="+tz, "AIWATT_REPORT_NOW="+tc.now)
				if err != nil {
					t.Fatalf("TZ=%s: %v", tz, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("TZ=%s: aiwatt report %q, want %q", tz, got, want)
				}
			}
		})
	}

	t.Run("now", func(t *testing.T) {
		before := time.Now().UTC()
		got, err := run(t, "previousMonth", "TZ=UTC")
		if err != nil {
			t.Fatal(err)
		}
		to := time.Date(before.Year(), before.Month(), 1, 0, 0, 0, 0, time.UTC)
		from := to.AddDate(0, -1, 0)
		want := []string{"--from", from.Format(time.DateOnly), "--to", to.Format(time.DateOnly), "--out", "/reports/" + from.Format("2006-01")}
		if !slices.Equal(got, want) && time.Now().UTC().Month() == before.Month() {
			t.Errorf("aiwatt report %q, want %q", got, want)
		}
	})

	t.Run("bad clock", func(t *testing.T) {
		_, err := run(t, "previousMonth", "TZ=UTC", "AIWATT_REPORT_NOW=yesterday-ish")
		if err == nil {
			t.Fatal("the wrapper ran aiwatt with an unparsable AIWATT_REPORT_NOW")
		}
	})
}

// The wrapper refuses a period it does not know (the schema refuses it
// first; this is the script's own guard).
func TestReportsWrapperRefusesUnknownPeriod(t *testing.T) {
	_, c := reportsContainer(t, render(t, renderOpts{values: "reports: {enabled: true, prometheusURL: http://p:9090}"}))
	cmd := exec.Command(c.Command[0], append(slices.Clone(c.Command[1:]), c.Args...)...)
	cmd.Env = []string{"PATH=/nonexistent:/usr/bin:/bin", "AIWATT_REPORT_PERIOD=lastQuarter", "AIWATT_REPORT_NOW=2026-03-01"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `unknown period "lastQuarter"`) {
		t.Errorf("err = %v, output %q; want exit 2 naming the period", err, out)
	}
}
