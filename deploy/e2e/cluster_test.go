package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kubeVersion is the Kubernetes release of cmd/kube-apiserver (go.mod pins
// k8s.io/kubernetes at it, and each staging module at v0.<minor>.<patch>).
const kubeVersion = "v1.37.2"

// cluster is one etcd and one kube-apiserver on 127.0.0.1, shared by the
// package's tests: token authentication, --authorization-mode=RBAC, the
// default admission plugins (PodSecurity among them), service account tokens
// signed by a key of the test's own.
type cluster struct {
	// URL is the API server's address, https://127.0.0.1:PORT.
	URL string
	// Port is the API server's port.
	Port int
	// CA is the PEM certificate of the CA that signed the server's certificate.
	CA []byte
	// Kubeconfig is a kubeconfig file of the cluster's administrator
	// (system:masters).
	Kubeconfig string
	// Admin is the administrator's client configuration.
	Admin *rest.Config
	// Client is a clientset of the administrator.
	Client kubernetes.Interface
	// AuditLog is the API server's audit log (JSON lines, level Metadata).
	AuditLog string

	dir string
}

var (
	clusterOnce sync.Once
	shared      *cluster
	clusterErr  error
)

// startCluster starts the package's cluster on first use.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() {
		bin, err := serverBinaries()
		if err != nil {
			clusterErr = fmt.Errorf("build the servers: %w", err)
			return
		}
		start := time.Now()
		shared, clusterErr = newCluster(bin)
		if clusterErr == nil {
			fmt.Fprintf(os.Stderr, "e2e: etcd and kube-apiserver %s ready in %v\n", kubeVersion, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if clusterErr != nil {
		t.Fatalf("cluster: %v", clusterErr)
	}
	return shared
}

// serverBinaries builds servers/cmd/kube-apiserver and servers/cmd/etcd (a
// module of their own, so that Kubernetes gets exactly the versions it pins)
// once per servers/go.sum and Go toolchain, into the repository's .cache/e2e, and returns their directory.
func serverBinaries() (string, error) {
	sum, err := os.ReadFile(filepath.Join("servers", "go.sum"))
	if err != nil {
		return "", err
	}
	// The server reports its version from these (Helm checks the chart's
	// kubeVersion against it), as the release build sets them.
	major, minor, _ := strings.Cut(strings.TrimPrefix(kubeVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	const pkg = "k8s.io/component-base/version"
	ldflags := fmt.Sprintf("-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
		pkg, kubeVersion, pkg, major, pkg, minor, pkg)
	h := sha256.New()
	h.Write(sum)
	h.Write([]byte(runtime.Version()))
	h.Write([]byte(ldflags))
	dir := filepath.Join(repoRoot, ".cache", "e2e", kubeVersion+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "etcd")); err == nil {
			return dir, nil
		}
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if _, err := run(ctx, "servers", nil, "go", "build", "-ldflags", ldflags, "-o", tmp+"/", "./cmd/kube-apiserver", "./cmd/etcd"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	// Builds of an older go.sum or Go version are not used again.
	if old, err := filepath.Glob(filepath.Join(filepath.Dir(dir), "v*-*")); err == nil {
		for _, o := range old {
			if o != dir && !strings.HasSuffix(o, ".tmp") {
				_ = os.RemoveAll(o)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: built kube-apiserver and etcd into %s in %v\n", dir, time.Since(start).Round(time.Second))
	return dir, nil
}

// newCluster writes the certificates and keys, starts etcd and the API
// server of the binaries in bin, and waits until the server is ready.
func newCluster(bin string) (_ *cluster, err error) {
	dir, err := os.MkdirTemp("", "aiwatt-e2e-cluster-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	type proc struct {
		name   string
		cmd    *exec.Cmd
		exited chan struct{} // closed when it has exited
	}
	var procs []proc
	stop := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			p := procs[i]
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		_ = os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			stop()
		} else {
			stops = append(stops, stop)
		}
	}()

	pki, err := writePKI(dir)
	if err != nil {
		return nil, err
	}
	c.CA = pki.caPEM
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	// Metadata of every request (who, verb, URI with its field selector,
	// answer), for the checks of what the agent asked for.
	policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"
	if err := os.WriteFile(filepath.Join(dir, "audit-policy.yaml"), []byte(policy), 0o600); err != nil {
		return nil, err
	}
	c.AuditLog = filepath.Join(dir, "audit.log")

	startProc := func(name string, args ...string) error {
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		p := proc{name: name, cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
		procs = append(procs, p)
		return nil
	}
	clientPort, peerPort := freePortOrZero(), freePortOrZero()
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := startProc("etcd",
		"--name=e2e", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return nil, err
	}
	c.Port = freePortOrZero()
	c.URL = "https://127.0.0.1:" + strconv.Itoa(c.Port)
	if err := startProc("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(c.Port),
		"--tls-cert-file="+pki.serverCert, "--tls-private-key-file="+pki.serverKey,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=PodSecurity",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.saKey, "--service-account-signing-key-file="+pki.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		// The kubernetes Service's endpoint would be 127.0.0.1, which the
		// endpoint reconciler refuses; no pod needs that Service here.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--audit-policy-file="+filepath.Join(dir, "audit-policy.yaml"), "--audit-log-path="+c.AuditLog,
		"--audit-log-mode=blocking", "--audit-log-format=json",
		"--profiling=false",
	); err != nil {
		return nil, err
	}

	c.Admin = &rest.Config{Host: c.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA}, QPS: 100, Burst: 200}
	if c.Client, err = kubernetes.NewForConfig(c.Admin); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			break
		}
		for _, p := range procs {
			select {
			case <-p.exited:
				return nil, fmt.Errorf("%s exited: %s", p.name, c.logTail(p.name))
			default:
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the API server is not ready (%v): %s", err, c.logTail("kube-apiserver"))
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.URL, c.CA, token); err != nil {
		return nil, err
	}
	return c, nil
}

// logTail is the end of a server's log.
func (c *cluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	return tail(string(b), 1500)
}

func freePortOrZero() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// writeKubeconfig writes a kubeconfig of one cluster, user and context.
func writeKubeconfig(path, server string, ca []byte, token string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: %s
      certificate-authority-data: %s
users:
  - name: e2e
    user:
      token: %s
contexts:
  - name: e2e
    context: {cluster: e2e, user: e2e}
current-context: e2e
`, server, base64Std(ca), token)
	return os.WriteFile(path, []byte(kc), 0o600)
}

// pki are the files of the cluster's certificates and keys.
type pki struct {
	caPEM                 []byte
	serverCert, serverKey string
	saKey                 string
}

// writePKI makes a CA, a serving certificate for 127.0.0.1 and localhost, and
// the key that signs service account tokens.
func writePKI(dir string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aiwatt-e2e-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames:    []string{"localhost", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p := &pki{
		caPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		serverCert: filepath.Join(dir, "apiserver.crt"),
		serverKey:  filepath.Join(dir, "apiserver.key"),
		saKey:      filepath.Join(dir, "sa.key"),
	}
	write := func(path, typ string, der []byte) error {
		return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	if err := write(p.serverCert, "CERTIFICATE", srvDER); err != nil {
		return nil, err
	}
	for path, key := range map[string]*ecdsa.PrivateKey{p.serverKey: srvKey, p.saKey: saKey} {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := write(path, "EC PRIVATE KEY", der); err != nil {
			return nil, err
		}
	}
	return p, nil
}
