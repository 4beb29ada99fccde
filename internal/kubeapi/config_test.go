package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seen is what the test API server saw of a request.
type seen struct {
	Auth   string `json:"auth"`
	Client string `json:"client"` // the client certificate's common name
	Agent  string `json:"agent"`
	Path   string `json:"path"`
}

// echo answers every request with what it saw.
func echo(w http.ResponseWriter, r *http.Request) {
	s := seen{Auth: r.Header.Get("Authorization"), Agent: r.Header.Get("User-Agent"), Path: r.URL.Path}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		s.Client = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// client returns a PEM client certificate and key for cn.
func (ca *testCA) client(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tlsServer starts an HTTPS echo server (its certificate is for 127.0.0.1
// and example.com); with ca, it requires a client certificate from it.
func tlsServer(t *testing.T, ca *testCA) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(echo))
	if ca != nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// kubeconfig writes a kubeconfig with one context "c" of cluster and user
// (YAML mappings' bodies, indented by the caller's two spaces).
func kubeconfig(t *testing.T, dir, cluster, user string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	writeFile(t, path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://192.0.2.1", proxy-url: "http://proxy"}
- name: test
  cluster:
%s
users:
- name: plugin
  user: {exec: {command: get-token, apiVersion: client.authentication.k8s.io/v1}}
- name: me
  user:
%s
contexts:
- name: other
  context: {cluster: other, user: plugin}
- name: c
  context: {cluster: test, user: me, namespace: ml}
current-context: c
preferences: {}
`, cluster, user))
	return path
}

func get(t *testing.T, cfg *Config) (seen, error) {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	var s seen
	err = c.GetJSON(context.Background(), "/api/v1/nodes/n1", nil, 1<<20, &s)
	return s, err
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Each supported kubeconfig form reaches a real TLS server with the
// credentials it names.
func TestKubeconfig(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM := ca.client(t, "aiwatt-agent")
	plain, plainCA := tlsServer(t, nil)
	mtls, mtlsCA := tlsServer(t, ca)
	for _, tc := range []struct {
		name          string
		srv           *httptest.Server
		cluster, user string
		files         map[string][]byte
		want          seen
		err           string // of the request
	}{
		{name: "token and CA data", srv: plain,
			cluster: "    server: %s\n    certificate-authority-data: " + b64(plainCA), user: "    token: abc123",
			want: seen{Auth: "Bearer abc123"}},
		{name: "token file and CA file, relative", srv: plain,
			cluster: "    server: %s\n    certificate-authority: pki/ca.pem", user: "    tokenFile: secrets/token\n    token: ignored",
			files: map[string][]byte{"pki/ca.pem": plainCA, "secrets/token": []byte("from-file\n")}, want: seen{Auth: "Bearer from-file"}},
		{name: "client certificate files", srv: mtls,
			cluster: "    server: %s\n    certificate-authority: ca.pem", user: "    client-certificate: pki/agent.crt\n    client-key: pki/agent.key",
			files: map[string][]byte{"ca.pem": mtlsCA, "pki/agent.crt": certPEM, "pki/agent.key": keyPEM}, want: seen{Client: "aiwatt-agent"}},
		{name: "client certificate data", srv: mtls,
			cluster: "    server: %s\n    certificate-authority-data: " + b64(mtlsCA),
			user:    "    client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(keyPEM), want: seen{Client: "aiwatt-agent"}},
		{name: "no client certificate", srv: mtls,
			cluster: "    server: %s\n    certificate-authority-data: " + b64(mtlsCA), user: "    token: x", err: "certificate"},
		{name: "basic auth", srv: plain,
			cluster: "    server: %s\n    certificate-authority-data: " + b64(plainCA), user: "    username: admin\n    password: s3cret",
			want: seen{Auth: "Basic " + b64([]byte("admin:s3cret"))}},
		{name: "insecure", srv: plain, cluster: "    server: %s\n    insecure-skip-tls-verify: true", user: "    {}", want: seen{}},
		{name: "server unknown", srv: plain, cluster: "    server: %s", user: "    {}", err: "certificate"},
		{name: "tls-server-name", srv: plain,
			cluster: "    server: %s\n    tls-server-name: example.com\n    certificate-authority-data: " + b64(plainCA), user: "    {}", want: seen{}},
		{name: "wrong tls-server-name", srv: plain,
			cluster: "    server: %s\n    tls-server-name: api.example.net\n    certificate-authority-data: " + b64(plainCA), user: "    {}", err: "api.example.net"},
		{name: "extensions and compression", srv: plain,
			cluster: "    server: %s\n    disable-compression: true\n    extensions: [{name: x, extension: {}}]\n    certificate-authority-data: " + b64(plainCA),
			user:    "    token: t\n    extensions: []", want: seen{Auth: "Bearer t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, name), data)
			}
			cfg, err := LoadKubeconfig(kubeconfig(t, dir, fmt.Sprintf(tc.cluster, tc.srv.URL), tc.user))
			if err != nil {
				t.Fatal(err)
			}
			got, err := get(t, cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("request: %v, want an error about %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Path = "/api/v1/nodes/n1"
			if !strings.HasPrefix(got.Agent, "aiwatt/") {
				t.Errorf("User-Agent %q", got.Agent)
			}
			got.Agent = ""
			if got != tc.want {
				t.Errorf("server saw %+v, want %+v", got, tc.want)
			}
		})
	}
}

// What the client cannot honour is refused, naming the field.
func TestKubeconfigRefused(t *testing.T) {
	ok := "    server: https://127.0.0.1:6443"
	for _, tc := range []struct {
		name, cluster, user, err string
	}{
		{"exec plugin", ok, "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}", "field exec: exec credential plugins are not supported"},
		{"auth-provider", ok, "    auth-provider: {name: oidc}", "field auth-provider"},
		{"impersonation", ok, "    token: t\n    as: admin", "field as: impersonation"},
		{"proxy-url", ok + "\n    proxy-url: http://proxy:3128", "    {}", "field proxy-url"},
		{"unknown field", ok, "    token: t\n    token-refresh: yes", "field token-refresh is not supported"},
		{"no server", "    insecure-skip-tls-verify: true", "    {}", "no server"},
		{"not a URL", "    server: ftp://x", "    {}", "not an http(s) URL"},
		{"missing CA file", ok + "\n    certificate-authority: /nonexistent/ca.pem", "    {}", "certificate-authority: open /nonexistent/ca.pem"},
		{"CA data and insecure", ok + "\n    insecure-skip-tls-verify: true\n    certificate-authority-data: " + b64([]byte("x")), "    {}", "insecure-skip-tls-verify and a certificate-authority"},
		{"bad CA data", ok + "\n    certificate-authority-data: '%%%'", "    {}", "certificate-authority-data"},
		{"CA not PEM", ok + "\n    certificate-authority-data: " + b64([]byte("not pem")), "    {}", "no PEM certificate"},
		{"token and basic", ok, "    token: t\n    username: u\n    password: p", "both a token and a username"},
		{"certificate without key", ok, "    client-certificate-data: " + b64([]byte("x")), "without the other"},
		{"missing token file", ok, "    tokenFile: nope", "tokenFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKubeconfig(kubeconfig(t, t.TempDir(), tc.cluster, tc.user))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error containing %q", err, tc.err)
			}
		})
	}
	for name, doc := range map[string]string{
		"no current-context": "clusters: []\n",
		"unknown context":    "current-context: x\n",
		"unknown cluster":    "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
		"unknown user":       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n",
		"not YAML":           "current-context: [\n",
	} {
		if _, err := parseKubeconfig([]byte(doc), "/"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadKubeconfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

// In a pod: the service account's CA and token, the token read again
// after the kubelet rotates it.
func TestInCluster(t *testing.T) {
	srv, caPEM := tlsServer(t, nil)
	dir := t.TempDir()
	old := serviceAccountDir
	serviceAccountDir = dir
	t.Cleanup(func() { serviceAccountDir = old })
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InCluster(); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a pod: %v", err)
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	t.Setenv("KUBERNETES_SERVICE_HOST", host)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	if _, err := InCluster(); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("without a token: %v", err)
	}
	rotate := func(tok string) {
		tmp := filepath.Join(dir, ".token")
		writeFile(t, tmp, []byte(tok))
		if err := os.Rename(tmp, filepath.Join(dir, "token")); err != nil {
			t.Fatal(err)
		}
	}
	rotate("first")
	if _, err := InCluster(); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("without a CA: %v", err)
	}
	writeFile(t, filepath.Join(dir, "ca.crt"), caPEM)
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	for _, tok := range []string{"first", "second", "third-longer"} {
		if tok != "first" {
			rotate(tok)
		}
		var s seen
		if err := c.GetJSON(context.Background(), "/version", nil, 1<<20, &s); err != nil {
			t.Fatal(err)
		}
		if s.Auth != "Bearer "+tok {
			t.Errorf("after rotating to %q the server saw %q", tok, s.Auth)
		}
	}
}

// A token file that vanishes or empties keeps the last token; one never
// read is an error.
func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	f := &tokenFile{path: path}
	if _, err := f.get(); err == nil {
		t.Error("missing file: no error")
	}
	writeFile(t, path, []byte(" tok \n"))
	if tok, err := f.get(); err != nil || tok != "tok" {
		t.Errorf("%q, %v", tok, err)
	}
	writeFile(t, path, nil)
	if tok, err := f.get(); err != nil || tok != "tok" {
		t.Errorf("emptied: %q, %v", tok, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if tok, err := f.get(); err != nil || tok != "tok" {
		t.Errorf("removed: %q, %v", tok, err)
	}
}

// Non-2xx answers become StatusErrors; 410 and "too old resource version"
// are Gone.
func TestStatusError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusGone)
			fmt.Fprint(w, `{"kind":"Status","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`)
		case "/forbidden":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"kind":"Status","status":"Failure","message":"pods is forbidden: User \"x\" cannot list resource \"pods\"","reason":"Forbidden","code":403}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream down\n")
		}
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(&Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	_, err = c.Get(context.Background(), "/gone", nil)
	if !IsGone(err) || !errors.As(err, &se) || se.Reason != "Expired" {
		t.Errorf("410: %v", err)
	}
	_, err = c.Get(context.Background(), "/forbidden", nil)
	if IsGone(err) || !errors.As(err, &se) || se.Code != 403 || !strings.Contains(err.Error(), `cannot list resource "pods"`) {
		t.Errorf("403: %v", err)
	}
	_, err = c.Get(context.Background(), "/other", nil)
	if !errors.As(err, &se) || se.Code != 502 || !strings.Contains(err.Error(), "upstream down") {
		t.Errorf("502: %v", err)
	}
	if IsGone(errors.New("x")) || !IsGone(Status{Code: 500, Message: "too old resource version: 3 (9)"}.Err("/p")) {
		t.Error("IsGone")
	}
	if err := c.GetJSON(context.Background(), "/other", nil, 10, &struct{}{}); err == nil {
		t.Error("error status decoded")
	}
}
