package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Podman on this kind of machine: chroot isolation to build, runc with
// explicit ulimits to run (the default limits are refused), the host's
// network (the agent listens on 127.0.0.1).
var (
	podmanEnv     = []string{"BUILDAH_ISOLATION=chroot"}
	podmanRunArgs = []string{"--runtime", "runc", "--network", "host", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1024:1024"}
)

// builtImage is the image `make image` built for the package's tests.
type builtImage struct {
	Ref, Version, Revision string
}

var (
	imageOnce sync.Once
	imageRes  builtImage
	imageErr  error
)

// agentImage builds the image once for the package, as a user does:
// `make image` (make build, then podman build of the Dockerfile's default
// target), with a version of the test's own. The Dockerfile's base stage
// (apt-get) must come from podman's cache (deploy/e2e/setup.sh made it): the
// test uses no network.
func agentImage(t *testing.T) builtImage {
	t.Helper()
	imageOnce.Do(func() {
		v := "v0.0.0-e2e." + strconv.FormatInt(time.Now().Unix(), 10)
		img := builtImage{Ref: "localhost/aiwatt-e2e:" + v, Version: v, Revision: "e2e" + randomHex(8)}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := run(ctx, repoRoot, podmanEnv, "make", "image", "CONTAINER_ENGINE=podman", "IMAGE="+img.Ref, "VERSION="+img.Version,
			"REVISION="+img.Revision, "IMAGE_FLAGS=--pull=never")
		if err != nil {
			imageErr = err
			return
		}
		if m := regexp.MustCompile(`STEP \d+/\d+: RUN apt-get[^\n]*\n(\S[^\n]*)`).FindStringSubmatch(out); m == nil || !strings.HasPrefix(m[1], "--> Using cache") {
			imageErr = fmt.Errorf("the base stage's apt-get ran in the test (it needs the network); run deploy/e2e/setup.sh first:\n%s", tail(out, 3000))
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: make image in %v\n", time.Since(start).Round(100*time.Millisecond))
		imageRes = img
		stops = append(stops, func() {
			_, _ = run(context.Background(), repoRoot, podmanEnv, "podman", "rmi", "-f", img.Ref)
		})
	})
	if imageErr != nil {
		t.Fatalf("image: %v", imageErr)
	}
	return imageRes
}

// runOpts are the host side of a container run the chart's way.
type runOpts struct {
	// hostPaths maps the chart's hostPath volumes (/sys, /proc) to the
	// directories mounted in their place.
	hostPaths map[string]string
	// configMaps holds the files of the chart's ConfigMap volumes, by name.
	configMaps map[string]map[string]string
	// fieldEnv are the values of the downward-API variables (NODE_NAME, HOST_IP).
	fieldEnv map[string]string
	// extraEnv and extraMounts ("SRC:DST:ro") add what the kubelet adds.
	extraEnv    []string
	extraMounts []string
	// listen replaces the chart's --web.listen-address (host network).
	listen string
	// imageUser drops the chart's user: the image's default user (nobody).
	imageUser bool
}

// runAsChart starts the DaemonSet's agent container with podman as the
// kubelet would start it: its image, args, env, security context and
// volumes, the host paths replaced by fixture trees. It returns the
// container's name; the test removes it at the end.
func runAsChart(t *testing.T, ds *appsv1.DaemonSet, o runOpts) string {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("the DaemonSet has %d containers", len(spec.Containers))
	}
	ctr := spec.Containers[0]
	if len(ctr.Command) > 0 {
		t.Fatalf("the chart overrides the image's entrypoint with %q", ctr.Command)
	}
	name := "aiwatt-e2e-" + randomHex(4)
	args := append([]string{"run", "-d", "--name", name}, podmanRunArgs...)
	if spec.HostPID {
		args = append(args, "--pid", "host")
	}
	if sc := ctr.SecurityContext; sc != nil {
		if sc.RunAsUser != nil && !o.imageUser {
			u := strconv.FormatInt(*sc.RunAsUser, 10)
			if sc.RunAsGroup != nil {
				u += ":" + strconv.FormatInt(*sc.RunAsGroup, 10)
			}
			args = append(args, "--user", u)
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Drop {
				args = append(args, "--cap-drop", string(c))
			}
			for _, c := range sc.Capabilities.Add {
				args = append(args, "--cap-add", string(c))
			}
		}
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			// The kubelet mounts no tmpfs of its own on a read-only root.
			args = append(args, "--read-only", "--read-only-tmpfs=false")
		}
		if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			args = append(args, "--security-opt", "no-new-privileges")
		}
		if sc.Privileged != nil && *sc.Privileged {
			args = append(args, "--privileged")
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range ctr.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Fatalf("volume mount %s has no volume", vm.Name)
		}
		var src string
		switch {
		case v.HostPath != nil:
			src = o.hostPaths[v.HostPath.Path]
			if src == "" {
				if v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
					t.Fatalf("no fixture for the hostPath %s", v.HostPath.Path)
				}
				src = t.TempDir() // the kubelet creates it empty
			}
		case v.ConfigMap != nil:
			files, ok := o.configMaps[v.ConfigMap.Name]
			if !ok {
				t.Fatalf("no ConfigMap %s", v.ConfigMap.Name)
			}
			src = t.TempDir()
			for f, data := range files {
				if err := os.WriteFile(filepath.Join(src, f), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("volume %s: only hostPath and configMap volumes are mapped", v.Name)
		}
		m := src + ":" + vm.MountPath
		if vm.ReadOnly {
			m += ":ro"
		}
		args = append(args, "-v", m)
	}
	for _, m := range o.extraMounts {
		args = append(args, "-v", m)
	}
	for _, e := range ctr.Env {
		val := e.Value
		if e.ValueFrom != nil {
			var ok bool
			if val, ok = o.fieldEnv[e.Name]; !ok {
				t.Fatalf("no value for the downward-API variable %s", e.Name)
			}
		}
		args = append(args, "-e", e.Name+"="+val)
	}
	for _, e := range o.extraEnv {
		args = append(args, "-e", e)
	}
	args = append(args, ctr.Image)
	replaced := false
	for _, a := range ctr.Args {
		if strings.HasPrefix(a, "--web.listen-address=") {
			a, replaced = "--web.listen-address="+o.listen, true
		}
		args = append(args, a)
	}
	if !replaced {
		t.Fatalf("the chart's args %q have no --web.listen-address", ctr.Args)
	}
	if _, err := run(context.Background(), repoRoot, podmanEnv, "podman", args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := run(context.Background(), repoRoot, podmanEnv, "podman", "logs", name)
			t.Logf("container %s logs:\n%s", name, tail(logs, 6000))
		}
		_, _ = run(context.Background(), repoRoot, podmanEnv, "podman", "rm", "-f", "-t", "2", name)
	})
	return name
}

// fixtureSysfs writes the two-socket Intel powercap tree with the kernel's
// modes: energy_uj readable by its owner (root) only.
func fixtureSysfs(t *testing.T) string {
	t.Helper()
	root := sysfsfixture.Materialize(t, filepath.Join(repoRoot, "rapl", "testdata", "intel-2socket.sysfs"))
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "energy_uj" {
			err = os.Chmod(p, 0o400)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// addEnergy adds uj microjoules to the package-0 counter of a fixture tree.
func addEnergy(t *testing.T, sysfs string, uj uint64) {
	t.Helper()
	p := filepath.Join(sysfs, "class/powercap/intel-rapl:0/energy_uj")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.FormatUint(v+uj, 10)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
}

// fixtureProcfs writes a procfs root with the 4-CPU /proc/stat of the RAPL
// fixtures and no process.
func fixtureProcfs(t *testing.T) string {
	t.Helper()
	stat, err := os.ReadFile(filepath.Join(repoRoot, "rapl", "testdata", "proc-4cpu", "stat"))
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "proc")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, data := range map[string][]byte{"stat": stat, "uptime": []byte("100000.00 300000.00\n")} {
		if err := os.WriteFile(filepath.Join(root, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// chartForImage renders the chart's DaemonSet and ConfigMap with the test's
// image and a one-second interval.
func chartForImage(t *testing.T, img builtImage) (*appsv1.DaemonSet, map[string]map[string]string) {
	t.Helper()
	repo, tag, _ := strings.Cut(img.Ref, ":")
	vals := chartValues(t, fmt.Sprintf("image: {repository: %q, tag: %q}\nagent: {interval: 1s}\n", repo, tag))
	objs, err := renderChart(t, "aiwatt", vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs.daemonSet, objs.configMaps
}

// TestImage builds the image and checks its metadata: the version the
// binary reports, the OCI labels, the entrypoint, command and default user.
func TestImage(t *testing.T) {
	img := agentImage(t)
	out, err := run(context.Background(), repoRoot, podmanEnv, "podman", "image", "inspect", img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	var inspect []struct {
		Config struct {
			User       string
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
			Env        []string
		}
	}
	if err := json.Unmarshal([]byte(out), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	cfg := inspect[0].Config
	if want := []string{"/usr/bin/aiwatt"}; strings.Join(cfg.Entrypoint, " ") != strings.Join(want, " ") {
		t.Errorf("entrypoint %q, want %q", cfg.Entrypoint, want)
	}
	if strings.Join(cfg.Cmd, " ") != "agent" {
		t.Errorf("cmd %q, want [agent]", cfg.Cmd)
	}
	if cfg.User != "65534:65534" {
		t.Errorf("user %q, want 65534:65534 (nobody)", cfg.User)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  img.Version,
		"org.opencontainers.image.revision": img.Revision,
		"org.opencontainers.image.title":    "aiwatt",
		"org.opencontainers.image.source":   "https://github.com/inferensys/aiwatt",
		"org.opencontainers.image.url":      "https://github.com/inferensys/aiwatt",
	} {
		if got := cfg.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"org.opencontainers.image.created", "org.opencontainers.image.description", "org.opencontainers.image.documentation"} {
		if cfg.Labels[k] == "" || cfg.Labels[k] == "unknown" {
			t.Errorf("label %s = %q", k, cfg.Labels[k])
		}
	}
	if _, err := time.Parse(time.RFC3339, cfg.Labels["org.opencontainers.image.created"]); err != nil {
		t.Errorf("label created: %v", err)
	}
	// The entrypoint is the aiwatt binary: arguments go to it.
	out, err = run(context.Background(), repoRoot, podmanEnv, "podman", append(append([]string{"run", "--rm"}, podmanRunArgs...), img.Ref, "--version")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "aiwatt, version "+img.Version+" ") || !strings.Contains(out, "revision: "+img.Revision) {
		t.Errorf("aiwatt --version in the image:\n%s", out)
	}
}

// TestImageRunAsChart runs the image as the chart runs the agent (user 0,
// every capability dropped, read-only root filesystem, no privilege
// escalation, fixture sysfs and procfs read-only at /host/sys and /host/proc),
// scrapes /metrics from outside the container, and checks the version, RAPL
// read from the fixture tree, and NVML's absence reported as absent (the
// machine has no NVIDIA driver), not as an error.
func TestImageRunAsChart(t *testing.T) {
	img := agentImage(t)
	ds, cms := chartForImage(t, img)
	sysfs, procfs := fixtureSysfs(t), fixtureProcfs(t)
	port := freePortOrZero()
	name := runAsChart(t, ds, runOpts{
		hostPaths:  map[string]string{"/sys": sysfs, "/proc": procfs},
		configMaps: cms,
		fieldEnv:   map[string]string{"NODE_NAME": "", "HOST_IP": "127.0.0.1"},
		listen:     "127.0.0.1:" + strconv.Itoa(port),
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	var body string
	waitFor(t, "RAPL up", 60*time.Second, func() (bool, error) {
		var err error
		body, err = scrape(url)
		up, ok := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`)
		return ok && up == 1, err
	})
	// The agent holds its baseline now: 5 J more on package 0 must show as
	// exactly 5 J.
	addEnergy(t, sysfs, 5_000_000)
	waitFor(t, "5 J on package 0", 30*time.Second, func() (bool, error) {
		var err error
		body, err = scrape(url)
		j, ok := sampleValue(body, `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="package"}`)
		if ok && j > 5 {
			return false, fmt.Errorf("package 0 counted %v J, want 5", j)
		}
		return ok && j == 5, err
	})
	if got := seriesWith(body, "aiwatt_build_info", `version="`+img.Version+`"`, `revision="`+img.Revision+`"`); len(got) != 1 {
		t.Errorf("no aiwatt_build_info with version %s and revision %s:\n%s", img.Version, img.Revision, strings.Join(seriesWith(body, "aiwatt_build_info"), "\n"))
	}
	if up, ok := sampleValue(body, `aiwatt_source_up{source="nvml",target=""}`); !ok || up != 0 {
		t.Errorf("aiwatt_source_up{source=\"nvml\"} = %v (present %v), want 0", up, ok)
	}
	if errs := seriesWith(body, "aiwatt_source_errors_total", `source="nvml"`); len(errs) > 0 {
		t.Errorf("NVML's absence counted as errors: %q", errs)
	}
	if errs := seriesWith(body, "aiwatt_source_errors_total", `source="rapl"`); len(errs) > 0 {
		t.Errorf("RAPL errors as user 0: %q", errs)
	}
	// One informational line says why, no warning or error.
	logs, err := run(context.Background(), repoRoot, podmanEnv, "podman", "logs", name)
	if err != nil {
		t.Fatal(err)
	}
	var nvml []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "source_name=nvml") || strings.Contains(strings.ToLower(l), "level=error") {
			nvml = append(nvml, l)
		}
	}
	if len(nvml) != 1 || !strings.Contains(nvml[0], "level=INFO") || !strings.Contains(nvml[0], "libnvidia-ml.so.1 not found") {
		t.Errorf("want one INFO line about NVML's absence, got:\n%s", strings.Join(nvml, "\n"))
	}
}

// TestImageRunAsNobody runs the image as its default user, nobody, otherwise
// as the chart does: RAPL is reported down with reason permission_denied and
// the CPU power model's estimate is served.
func TestImageRunAsNobody(t *testing.T) {
	img := agentImage(t)
	ds, cms := chartForImage(t, img)
	sysfs, procfs := fixtureSysfs(t), fixtureProcfs(t)
	port := freePortOrZero()
	runAsChart(t, ds, runOpts{
		hostPaths:  map[string]string{"/sys": sysfs, "/proc": procfs},
		configMaps: cms,
		fieldEnv:   map[string]string{"NODE_NAME": "", "HOST_IP": "127.0.0.1"},
		listen:     "127.0.0.1:" + strconv.Itoa(port),
		imageUser:  true,
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	var body string
	waitFor(t, "RAPL down with permission_denied and the estimate served", 60*time.Second, func() (bool, error) {
		var err error
		body, err = scrape(url)
		up, okUp := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`)
		denied, okDenied := sampleValue(body, `aiwatt_source_errors_total{reason="permission_denied",source="rapl",target=""}`)
		model, okModel := sampleValue(body, `aiwatt_source_up{source="cpu_model",target=""}`)
		return okUp && up == 0 && okDenied && denied >= 1 && okModel && model == 1, err
	})
	if len(seriesWith(body, "aiwatt_cpu_energy_joules_total", `source="estimate"`)) == 0 {
		t.Errorf("no estimate series:\n%s", body)
	}
	// The zones are listed but none is read: their series stay at 0.
	for _, s := range seriesWith(body, "aiwatt_cpu_energy_joules_total", `source="rapl"`) {
		if !strings.HasSuffix(s, "} 0") {
			t.Errorf("RAPL energy counted as nobody: %s", s)
		}
	}
}
