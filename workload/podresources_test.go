package workload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/inferensys/aiwatt/internal/helperproc"
)

// kubeletServer is a pod-resources server like the kubelet's: grpc-go
// serving the kubelet's generated PodResourcesListerServer.
type kubeletServer struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	resp  *podresourcesv1.ListPodResourcesResponse // read under mu
	err   error                                    // when set, List returns it
	early bool                                     // with err: send the headers first, so the status comes in trailers
	block chan struct{}                            // when set, List waits on it (or the call's deadline)
	calls atomic.Int32
	conns atomic.Int32 // connections accepted

	mu       sync.Mutex
	deadline time.Duration // the time left when the last call arrived; 0 without a deadline
	ua       string        // the last call's user-agent
}

func (s *kubeletServer) List(ctx context.Context, _ *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	s.calls.Add(1)
	s.mu.Lock()
	s.deadline = 0
	if dl, ok := ctx.Deadline(); ok {
		s.deadline = time.Until(dl)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		s.ua = strings.Join(md.Get("user-agent"), ",")
	}
	resp := s.resp
	s.mu.Unlock()
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if s.err != nil {
		if s.early {
			if err := grpc.SendHeader(ctx, metadata.Pairs("x-kubelet", "1")); err != nil {
				return nil, err
			}
		}
		return nil, s.err
	}
	return resp, nil
}

// countingListener counts the connections a server accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serveKubelet serves srv on the unix socket sock until stop, which
// removes the socket as a stopped kubelet does.
func serveKubelet(t testing.TB, sock string, srv *kubeletServer) (stop func()) {
	t.Helper()
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(gs, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(countingListener{lis, &srv.conns}) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if srv.block != nil {
				select {
				case <-srv.block:
				default:
					close(srv.block)
				}
			}
			gs.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// startKubelet serves srv on a unix socket in a temporary directory.
func startKubelet(t testing.TB, srv *kubeletServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	serveKubelet(t, sock, srv)
	return sock
}

// An 8-GPU node as the NVIDIA device plugin reports it: whole GPUs, a
// time-sliced GPU shared by two pods, MIG devices in both naming schemes,
// index-named devices, and a non-GPU resource.
var nodeResources = &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
	{Name: "vllm-0", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{{
		Name: "server",
		Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b", "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}},
			{ResourceName: "example.com/nic", DeviceIds: []string{"0000:3b:00.1"}},
		},
		CpuIds: []int64{2, 3, 4, 5},
	}}},
	{Name: "notebook-a", Namespace: "research", Containers: []*podresourcesv1.ContainerResources{
		{Name: "init", Devices: nil},
		{Name: "jupyter", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-aa11bb22-cc33-dd44-ee55-ff6677889900::0"}},
		}},
	}},
	{Name: "notebook-b", Namespace: "research", Containers: []*podresourcesv1.ContainerResources{
		{Name: "jupyter", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-aa11bb22-cc33-dd44-ee55-ff6677889900::3"}},
		}},
	}},
	{Name: "embed-0", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{
		{Name: "tei", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/mig-1g.10gb", DeviceIds: []string{"MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f"}},
			{ResourceName: "nvidia.com/mig-3g.40gb", DeviceIds: []string{"MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0"}},
		}},
	}},
	{Name: "legacy", Namespace: "default", Containers: []*podresourcesv1.ContainerResources{
		{Name: "c", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"nvidia3"}}}},
	}},
}}

func TestPodResourcesList(t *testing.T) {
	srv := &kubeletServer{resp: nodeResources}
	c := NewPodResources(startKubelet(t, srv))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.List(ctx, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	const tsGPU = "GPU-aa11bb22-cc33-dd44-ee55-ff6677889900"
	none := GPUDevice{Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1}
	with := func(f func(*GPUDevice)) GPUDevice { d := none; f(&d); return d }
	want := []DeviceAllocation{
		{"ml", "vllm-0", "server", "nvidia.com/gpu", "GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b", "",
			with(func(d *GPUDevice) { d.UUID = "GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b" })},
		{"ml", "vllm-0", "server", "nvidia.com/gpu", "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e", "",
			with(func(d *GPUDevice) { d.UUID = "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e" })},
		{"research", "notebook-a", "jupyter", "nvidia.com/gpu", tsGPU + "::0", "",
			with(func(d *GPUDevice) { d.UUID, d.Shared, d.Replica = tsGPU, true, 0 })},
		{"research", "notebook-b", "jupyter", "nvidia.com/gpu", tsGPU + "::3", "",
			with(func(d *GPUDevice) { d.UUID, d.Shared, d.Replica = tsGPU, true, 3 })},
		{"ml", "embed-0", "tei", "nvidia.com/mig-1g.10gb", "MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f", "",
			with(func(d *GPUDevice) { d.MIGUUID = "MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f" })},
		{"ml", "embed-0", "tei", "nvidia.com/mig-3g.40gb", "MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0", "",
			with(func(d *GPUDevice) {
				d.UUID, d.MIGUUID = "GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a", "MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0"
				d.MIGGPUInstance, d.MIGComputeInstance = 2, 0
			})},
		{"default", "legacy", "c", "nvidia.com/gpu", "nvidia3", "", with(func(d *GPUDevice) { d.Index = 3 })},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d allocations, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allocation %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// No prefix: every resource, the NIC included. The connection is reused.
	all, err := c.List(ctx)
	if err != nil || len(all) != len(want)+1 || srv.calls.Load() != 2 {
		t.Fatalf("all resources: %d, %v (calls %d)", len(all), err, srv.calls.Load())
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for two calls, want 1", n)
	}
	// The call carried the context's deadline as grpc-timeout.
	srv.mu.Lock()
	left, ua := srv.deadline, srv.ua
	srv.mu.Unlock()
	if left <= 0 || left > 10*time.Second {
		t.Errorf("server saw %s left of a 10s deadline", left)
	}
	if !strings.HasPrefix(ua, "aiwatt") {
		t.Errorf("user-agent %q", ua)
	}
	// After Close, List dials again.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx); err != nil || srv.conns.Load() != 2 {
		t.Fatalf("after Close: %v, %d connections", err, srv.conns.Load())
	}
}

func TestPodResourcesMissingSocket(t *testing.T) {
	c := NewPodResources(filepath.Join(t.TempDir(), "kubelet.sock"))
	_, err := c.List(context.Background())
	if !errors.Is(err, ErrNoPodResources) {
		t.Fatalf("err = %v, want ErrNoPodResources", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// A kubelet that does not answer: the call ends at the context's deadline,
// which the server saw too (grpc-timeout), and the error is a timeout for
// the agent's reason classification.
func TestPodResourcesTimeout(t *testing.T) {
	srv := &kubeletServer{resp: nodeResources, block: make(chan struct{})}
	c := NewPodResources(startKubelet(t, srv))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.List(ctx, "nvidia.com/")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNoPodResources) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("List took %s despite a 200ms deadline", took)
	}
	srv.mu.Lock()
	left := srv.deadline
	srv.mu.Unlock()
	if left <= 0 || left > 200*time.Millisecond {
		t.Errorf("server saw %s left of a 200ms deadline", left)
	}
	// An expired context sends nothing.
	calls := srv.calls.Load()
	if _, err := c.List(ctx); !errors.Is(err, context.DeadlineExceeded) || srv.calls.Load() != calls {
		t.Errorf("expired context: %v, %d calls", err, srv.calls.Load()-calls)
	}
}

// A status other than OK comes back as a StatusError with its code and
// percent-decoded message, from the headers of a trailers-only response
// or from the trailers after the headers; PermissionDenied is a
// permission error and DeadlineExceeded a timeout.
func TestPodResourcesStatus(t *testing.T) {
	const msg = "access to pod-resources denied: uid 1000 ≠ 0 (100% sure)\nsee kubelet"
	for _, tc := range []struct {
		name  string
		err   error
		early bool
		code  uint32
		msg   string
		is    error
	}{
		{"trailers-only", status.Error(codes.PermissionDenied, msg), false, 7, msg, fs.ErrPermission},
		{"in trailers", status.Error(codes.PermissionDenied, msg), true, 7, msg, fs.ErrPermission},
		{"unavailable", status.Error(codes.Unavailable, "kubelet is shutting down"), true, 14, "kubelet is shutting down", nil},
		{"deadline", status.Error(codes.DeadlineExceeded, ""), false, 4, "", context.DeadlineExceeded},
		{"unimplemented", status.Error(codes.Unimplemented, "unknown method"), false, 12, "unknown method", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewPodResources(startKubelet(t, &kubeletServer{err: tc.err, early: tc.early}))
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := c.List(ctx)
			var se *StatusError
			if !errors.As(err, &se) || got != nil {
				t.Fatalf("List = %v, %v; want a StatusError", got, err)
			}
			if se.Code != tc.code || se.Message != tc.msg {
				t.Errorf("status %d %q, want %d %q", se.Code, se.Message, tc.code, tc.msg)
			}
			if want := "desc = " + tc.msg; !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q does not end in %q", err, want)
			}
			for _, target := range []error{fs.ErrPermission, context.DeadlineExceeded, context.Canceled, ErrNoPodResources} {
				if errors.Is(err, target) != (target == tc.is) {
					t.Errorf("errors.Is(%v, %v) = %v", err, target, !(target == tc.is))
				}
			}
		})
	}
}

// A List response over podResourcesMaxMsg is refused before it is read;
// the connection serves the next call.
func TestPodResourcesResponseTooLarge(t *testing.T) {
	id := strings.Repeat("x", 1<<16)
	ids := make([]string, podResourcesMaxMsg/len(id)+1)
	for i := range ids {
		ids[i] = id
	}
	big := &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{{
		Name: "big", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{{
			Name: "c", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: ids}},
		}},
	}}}
	srv := &kubeletServer{resp: big}
	c := NewPodResources(startKubelet(t, srv))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := c.List(ctx, "nvidia.com/")
	if !errors.Is(err, ErrMessageTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("limit %d", podResourcesMaxMsg)) || got != nil {
		t.Fatalf("List = %d allocations, %v; want the size limit", len(got), err)
	}
	srv.mu.Lock()
	srv.resp = nodeResources
	srv.mu.Unlock()
	if got, err := c.List(ctx, "nvidia.com/"); err != nil || len(got) != 7 {
		t.Fatalf("after the refused response: %d allocations, %v", len(got), err)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections, want the first reused", n)
	}
}

// The kubelet restarts: its socket disappears (the source is absent), then
// a new kubelet listens on the same path, and the next List reaches it
// without an error. Then it restarts between calls without the client
// seeing the socket gone: the pooled connection is dead, and the call goes
// through on a new one.
func TestPodResourcesKubeletRestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	first := &kubeletServer{resp: nodeResources}
	stop := serveKubelet(t, sock, first)
	c := NewPodResources(sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := c.List(ctx, "nvidia.com/"); err != nil || len(got) != 7 {
		t.Fatalf("first kubelet: %d allocations, %v", len(got), err)
	}
	stop()
	if _, err := c.List(ctx); !errors.Is(err, ErrNoPodResources) {
		t.Fatalf("kubelet down: %v, want ErrNoPodResources", err)
	}
	cur := &kubeletServer{resp: &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
		{Name: "after", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{{Name: "c", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-1"}},
		}}}},
	}}}
	for i := range 4 {
		if i > 0 { // restart between two calls
			stop()
			cur = &kubeletServer{resp: cur.resp}
		}
		stop = serveKubelet(t, sock, cur)
		got, err := c.List(ctx, "nvidia.com/")
		if err != nil || len(got) != 1 || got[0].Pod != "after" {
			t.Fatalf("kubelet %d: %+v, %v", i+2, got, err)
		}
		// (net/http may dial twice and close the spare connection at once.)
		if cur.calls.Load() != 1 {
			t.Errorf("kubelet %d: %d calls", i+2, cur.calls.Load())
		}
	}
	if first.calls.Load() != 1 {
		t.Errorf("first kubelet: %d calls", first.calls.Load())
	}
}

// benchNode is the List response of a 110-pod node (the kubelet's default
// pod limit) where 8 pods hold a GPU each and every pod has a sidecar.
func benchNode() *podresourcesv1.ListPodResourcesResponse {
	resp := &podresourcesv1.ListPodResourcesResponse{}
	for i := range 110 {
		main := &podresourcesv1.ContainerResources{Name: "main", CpuIds: []int64{int64(i % 32)}}
		if i < 8 {
			main.Devices = []*podresourcesv1.ContainerDevices{{
				ResourceName: "nvidia.com/gpu", DeviceIds: []string{fmt.Sprintf("GPU-%08x-0000-4000-8000-000000000000", i)},
			}}
		}
		resp.PodResources = append(resp.PodResources, &podresourcesv1.PodResources{
			Name: fmt.Sprintf("pod-%03d", i), Namespace: fmt.Sprintf("ns-%d", i%7),
			Containers: []*podresourcesv1.ContainerResources{main, {Name: "sidecar"}},
		})
	}
	return resp
}

// serveKubeletProcess is the helper process of startKubeletProcess: a
// kubelet serving benchNode on sock until its stdin closes.
func serveKubeletProcess(sock string) {
	lis, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(gs, &kubeletServer{resp: benchNode()})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		gs.Stop()
	}()
	fmt.Println("ready")
	_ = gs.Serve(lis)
}

// startKubeletProcess runs a kubelet serving benchNode in another process,
// so that a benchmark counts the client's allocations only.
func startKubeletProcess(b *testing.B) string {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "kubelet.sock")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = helperproc.Env(execHelperEnv, "kubelet:"+sock)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		b.Fatalf("kubelet helper: %q, %v", line, err)
	}
	return sock
}

// BenchmarkPodResourcesList is one List of a 110-pod node with 8 GPUs
// against grpc-go serving the kubelet's API in another process: aiwatt's
// client ("stdlib") and, for comparison, grpc-go's client with the
// kubelet's generated types, as the agent had before.
func BenchmarkPodResourcesList(b *testing.B) {
	sock := startKubeletProcess(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	prefixes := []string{"nvidia.com/"}
	b.Run("stdlib", func(b *testing.B) {
		c := NewPodResources(sock)
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if got, err := c.List(ctx, prefixes...); err != nil || len(got) != 8 {
				b.Fatalf("%d allocations, %v", len(got), err)
			}
		}
	})
	b.Run("grpc-go", func(b *testing.B) {
		conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(podResourcesMaxMsg)))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		client := podresourcesv1.NewPodResourcesListerClient(conn)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
			if err != nil {
				b.Fatal(err)
			}
			if got := referenceAllocations(resp, prefixes); len(got) != 8 {
				b.Fatalf("%d allocations", len(got))
			}
		}
	})
}
