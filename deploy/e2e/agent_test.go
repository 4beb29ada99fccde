package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// workloadPod is a pod of the agent test: bound to node (no scheduler or
// kubelet runs; the test writes the status a kubelet would), one container
// "main" with a containerd container ID.
func workloadPod(t *testing.T, c *cluster, ns, name, node, containerID string, labels, annotations map[string]string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "main", Image: "registry.example.com/" + name + ":1"}},
		},
	}
	p, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "main", Ready: true, Image: p.Spec.Containers[0].Image, ImageID: "registry.example.com/" + name + "@sha256:" + strings.Repeat("0", 64),
			ContainerID: "containerd://" + containerID,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		}},
	}
	p, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("status of pod %s: %v", name, err)
	}
	return p
}

// procTree is a fixture procfs whose processes' CPU time the test advances.
type procTree struct {
	root  string
	stat  []string // /proc/stat lines
	ticks int      // user jiffies added so far
	pids  []int
}

// newProcTree writes /proc/stat (the RAPL fixtures' 4-CPU capture), uptime,
// and one process per pod UID, in that pod's container cgroup (cgroup v2,
// systemd driver, containerd).
func newProcTree(t *testing.T, procs map[int][2]string) *procTree {
	t.Helper()
	pt := &procTree{root: fixtureProcfs(t)}
	b, err := os.ReadFile(filepath.Join(pt.root, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	pt.stat = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for pid, pod := range procs {
		uid, cid := pod[0], pod[1]
		cg := fmt.Sprintf("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/cri-containerd-%s.scope\n",
			strings.ReplaceAll(uid, "-", "_"), cid)
		dir := filepath.Join(pt.root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, data := range map[string]string{
			"cgroup":  cg,
			"cmdline": "python3\x00train.py\x00",
			"status":  "Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n",
		} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		pt.pids = append(pt.pids, pid)
	}
	pt.advance(t, 0)
	return pt
}

// advance adds ticks jiffies of user time to every process and to the
// node's CPU 0 (and as much idle time to the other CPUs).
func (pt *procTree) advance(t *testing.T, ticks int) {
	t.Helper()
	pt.ticks += ticks
	for _, pid := range pt.pids {
		stat := fmt.Sprintf("%d (python3) R 1 %d %d 0 -1 4194560 100 0 0 0 %d 0 0 0 20 0 4 0 1000 1000000 1000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			pid, pid, pid, 100+pt.ticks)
		if err := os.WriteFile(filepath.Join(pt.root, strconv.Itoa(pid), "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	for _, line := range pt.stat {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[0], "cpu") {
			user, _ := strconv.Atoi(f[1])
			idle, _ := strconv.Atoi(f[4])
			n := len(pt.pids) * pt.ticks
			switch f[0] {
			case "cpu":
				user, idle = user+n, idle+3*n
			case "cpu0":
				user += n
			default:
				idle += n
			}
			f[1], f[4] = strconv.Itoa(user), strconv.Itoa(idle)
			line = strings.Join(f, " ")
		}
		out.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(pt.root, "stat"), []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAgentInCluster runs the image, as the chart's DaemonSet on the server
// runs it, with the in-cluster settings a kubelet gives it: the API server at
// KUBERNETES_SERVICE_HOST/PORT (127.0.0.1 here) and a TokenRequest token of
// the agent's ServiceAccount with the cluster's CA at
// /var/run/secrets/kubernetes.io/serviceaccount. The agent must discover the
// pods bound to its node with their labels and annotations, export the
// workload labels of the process the test puts in one pod's cgroup, follow a
// relabelling, never see a pod of another node, and ask the API server for
// nothing but its node's pods.
func TestAgentInCluster(t *testing.T) {
	c := defaultRelease(t)
	img := agentImage(t)
	ctx := context.Background()
	ensureNode(t, c, agentNode)
	ensureNode(t, c, otherNode)
	const ns = "workloads"
	createNamespace(t, c, ns, "")
	trainerCID, otherCID := randomHex(32), randomHex(32)
	trainer := workloadPod(t, c, ns, "trainer", agentNode, trainerCID,
		map[string]string{"app": "trainer", "aiwatt.io/project": "vision"},
		map[string]string{"aiwatt.io/model-id": "resnet-50", "aiwatt.io/workload-type": "training"})
	other := workloadPod(t, c, ns, "elsewhere", otherNode, otherCID,
		map[string]string{"app": "elsewhere", "aiwatt.io/project": "not-this-node"},
		map[string]string{"aiwatt.io/model-id": "other-model", "aiwatt.io/workload-type": "inference"})

	ds, err := c.Client.AppsV1().DaemonSets(releaseNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := c.Client.CoreV1().ConfigMaps(releaseNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	configMaps := map[string]map[string]string{}
	for _, cm := range cms.Items {
		configMaps[cm.Name] = cm.Data
	}
	// The chart's image reference names the published image; the test runs
	// the one it built (helm's --set image.repository=... image.tag=...).
	ds.Spec.Template.Spec.Containers[0].Image = img.Ref

	saDir := filepath.Join(t.TempDir(), "serviceaccount")
	if err := os.MkdirAll(saDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, data := range map[string][]byte{"token": []byte(agentToken(t, c)), "ca.crt": c.CA, "namespace": []byte(releaseNS)} {
		if err := os.WriteFile(filepath.Join(saDir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sysfs := fixtureSysfs(t)
	procs := newProcTree(t, map[int][2]string{4242: {string(trainer.UID), trainerCID}, 4343: {string(other.UID), otherCID}})
	port := freePortOrZero()
	start := time.Now()
	runAsChart(t, ds, runOpts{
		hostPaths:   map[string]string{"/sys": sysfs, "/proc": procs.root},
		configMaps:  configMaps,
		fieldEnv:    map[string]string{"NODE_NAME": agentNode, "HOST_IP": "127.0.0.1"},
		extraEnv:    []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=" + strconv.Itoa(c.Port)},
		extraMounts: []string{saDir + ":/var/run/secrets/kubernetes.io/serviceaccount:ro"},
		listen:      "127.0.0.1:" + strconv.Itoa(port),
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"

	// waitLabels advances the processes and the energy counter until the
	// trainer's workload series carries the label pairs.
	var body string
	waitLabels := func(what string, pairs ...string) {
		t.Helper()
		waitFor(t, what, 120*time.Second, func() (bool, error) {
			procs.advance(t, 50)
			addEnergy(t, sysfs, 2_000_000)
			var err error
			body, err = scrape(url)
			return len(seriesWith(body, "aiwatt_workload_energy_joules_total", pairs...)) > 0, err
		})
	}
	trainerLabels := []string{`namespace="workloads"`, `pod="trainer"`, `container="main"`, `project="vision"`, `model_id="resnet-50"`, `workload_type="training"`}
	waitLabels("the trainer pod's workload labels", trainerLabels...)
	t.Logf("the agent exported the trainer's labels %v after it started", time.Since(start).Round(100*time.Millisecond))
	if up, ok := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`); !ok || up != 1 {
		t.Errorf("RAPL up = %v (%v)", up, ok)
	}

	// A relabelled pod changes the labels.
	patch := []byte(`{"metadata":{"labels":{"aiwatt.io/project":"vision-v2"},"annotations":{"aiwatt.io/model-id":"resnet-101"}}}`)
	if _, err := c.Client.CoreV1().Pods(ns).Patch(ctx, "trainer", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLabels("the relabelled trainer", `pod="trainer"`, `project="vision-v2"`, `model_id="resnet-101"`, `workload_type="training"`)

	// The pod of the other node is never seen: its process stays
	// unattributed.
	for _, bad := range []string{`pod="elsewhere"`, `project="not-this-node"`, `model_id="other-model"`} {
		if s := seriesWith(body, "aiwatt_workload_energy_joules_total", bad); len(s) > 0 {
			t.Errorf("the other node's pod is attributed: %q", s)
		}
	}
	if j, ok := sampleValue(body, `aiwatt_node_unattributed_energy_joules_total{component="cpu"}`); !ok || j <= 0 {
		t.Errorf("the other node's process is not unattributed (cpu unattributed = %v, %v)", j, ok)
	}
	checkAgentRequests(t, c)
}

// auditEvent is what the test reads of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource string `json:"resource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// checkAgentRequests reads the API server's audit log: the agent (user agent
// aiwatt, the ServiceAccount's user) listed and watched pods, every time
// with its node's field selector, and was never refused.
func checkAgentRequests(t *testing.T, c *cluster) {
	t.Helper()
	f, err := os.Open(c.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	user := "system:serviceaccount:" + releaseNS + ":" + releaseName
	var lists, watches int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit log: %v", err)
		}
		if ev.User.Username != user || !strings.HasPrefix(ev.UserAgent, "aiwatt") || ev.Stage != "ResponseComplete" && ev.Stage != "ResponseStarted" {
			continue
		}
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code >= 400 {
			t.Errorf("the agent was refused: %s %s: %d", ev.Verb, ev.RequestURI, ev.ResponseStatus.Code)
		}
		if ev.ObjectRef == nil || ev.ObjectRef.Resource != "pods" {
			t.Errorf("the agent asked for more than pods: %s %s", ev.Verb, ev.RequestURI)
			continue
		}
		if !strings.Contains(ev.RequestURI, "fieldSelector=spec.nodeName%3D"+agentNode) {
			t.Errorf("the agent asked for pods without its node's field selector: %s %s", ev.Verb, ev.RequestURI)
		}
		switch ev.Verb {
		case "list":
			lists++
		case "watch":
			watches++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lists+watches == 0 {
		t.Error("the audit log has no list or watch of pods by the agent")
	}
	t.Logf("the agent's pod requests: %d list, %d watch, all with fieldSelector=spec.nodeName=%s", lists, watches, agentNode)
}
