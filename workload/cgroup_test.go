package workload

import "testing"

func TestParseCgroupPath(t *testing.T) {
	const (
		id  = "3f0e1d2c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
		uid = "5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01"
		us  = "5f1c2a7e_8d3b_4c1a_9f0e_2b6d7c8e9a01"
	)
	for _, tc := range []struct {
		path string
		want Cgroup
	}{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + us + ".slice/cri-containerd-" + id + ".scope",
			Cgroup{ContainerID: id, Runtime: RuntimeContainerd, PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + us + ".slice/cri-containerd-" + id + ".scope",
			Cgroup{ContainerID: id, Runtime: RuntimeContainerd, PodUID: uid}},
		{"/kubepods/burstable/pod" + uid + "/" + id, Cgroup{ContainerID: id, PodUID: uid}},
		{"/kubepods/pod" + uid + "/" + id, Cgroup{ContainerID: id, PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid, Cgroup{PodUID: uid}},
		// kind: kubelet's own slice in front
		{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + us + ".slice/cri-containerd-" + id + ".scope",
			Cgroup{ContainerID: id, Runtime: RuntimeContainerd, PodUID: uid}},
		// containerd's systemd cgroup form under cgroup v1
		{"/system.slice/containerd.service/kubepods-burstable-pod" + us + ".slice:cri-containerd:" + id,
			Cgroup{ContainerID: id, Runtime: RuntimeContainerd, PodUID: uid, SystemdUnit: "containerd.service"}},
		// static pod: 32-hex UID
		{"/kubepods/burstable/pod6f2e1c0b9a8d7c6b5a4f3e2d1c0b9a8d/" + id,
			Cgroup{ContainerID: id, PodUID: "6f2e1c0b9a8d7c6b5a4f3e2d1c0b9a8d"}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + us + ".slice/crio-" + id + ".scope/container",
			Cgroup{ContainerID: id, Runtime: RuntimeCRIO, PodUID: uid}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + us + ".slice/crio-conmon-" + id + ".scope",
			Cgroup{PodUID: uid}},
		{"/system.slice/docker-" + id + ".scope", Cgroup{ContainerID: id, Runtime: RuntimeDocker}},
		{"/docker/" + id, Cgroup{ContainerID: id, Runtime: RuntimeDocker}},
		{"/machine.slice/libpod-" + id + ".scope/container", Cgroup{ContainerID: id, Runtime: RuntimePodman}},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-" + id + ".scope",
			Cgroup{SystemdUnit: "user@1000.service"}},
		{"/slurm/uid_1000/job_4211/step_0/task_0", Cgroup{SlurmJob: "4211", SlurmStep: "0"}},
		{"/slurm_node07/uid_1000/job_99/step_extern", Cgroup{SlurmJob: "99", SlurmStep: "extern"}},
		{"/system.slice/slurmstepd.scope/job_4212/step_batch/user/task_0", Cgroup{SlurmJob: "4212", SlurmStep: "batch"}},
		{"/job_12/step_0", Cgroup{}}, // no slurm segment: not a Slurm job
		{"/system.slice/vllm.service", Cgroup{SystemdUnit: "vllm.service"}},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-ollama.service", Cgroup{SystemdUnit: "app-ollama.service"}},
		{"/", Cgroup{}},
		{"", Cgroup{}},
		{"/kubepods/burstable/podnot-a-uid/xyz", Cgroup{}},
		{"/kubepods.slice/kubepods-burstable-podzz.slice", Cgroup{}},
		{"/system.slice/other-pod" + us + ".slice", Cgroup{}}, // -pod outside kubepods
		{"/a/" + id[:63], Cgroup{}},
		{"/a/" + id + "0", Cgroup{}},
		{"/a/3F0E1D2C4B5A69788796A5B4C3D2E1F00112233445566778899AABBCCDDEEFF0", Cgroup{}},
	} {
		tc.want.Path = tc.path
		if got := ParseCgroupPath(tc.path); got != tc.want {
			t.Errorf("ParseCgroupPath(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
		}
	}
}

func TestParseCgroupFile(t *testing.T) {
	const id = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
	for _, tc := range []struct {
		name, in string
		want     Cgroup
	}{
		{"v2", "0::/system.slice/vllm.service\n", Cgroup{Path: "/system.slice/vllm.service", SystemdUnit: "vllm.service"}},
		{"v1 slurm beats the systemd line",
			"12:pids:/slurm/uid_1000/job_7/step_0\n1:name=systemd:/system.slice/slurmd.service\n",
			Cgroup{Path: "/slurm/uid_1000/job_7/step_0", SlurmJob: "7", SlurmStep: "0"}},
		{"hybrid: the v1 container line beats the v2 root",
			"4:memory:/docker/" + id + "\n0::/\n",
			Cgroup{Path: "/docker/" + id, ContainerID: id, Runtime: RuntimeDocker}},
		{"hybrid tie: v2 wins",
			"1:name=systemd:/user.slice/a.service\n0::/system.slice/b.service\n",
			Cgroup{Path: "/system.slice/b.service", SystemdUnit: "b.service"}},
		{"root only", "0::/\n", Cgroup{Path: "/"}},
		{"garbage", "nonsense\n\n3:cpu\n", Cgroup{}},
		{"empty", "", Cgroup{}},
		{"no trailing newline", "0::/system.slice/x.service", Cgroup{Path: "/system.slice/x.service", SystemdUnit: "x.service"}},
	} {
		if got := ParseCgroupFile([]byte(tc.in)); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}
