package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"

	"golang.org/x/crypto/bcrypt"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and returns
// a pool that trusts it.
func writeSelfSigned(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "aiwatt-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestEndToEndTLSBasicAuth serves /metrics over TLS with basic auth from
// --web.config.file and checks that only an authenticated TLS client gets
// the same golden exposition as the plain test.
func TestEndToEndTLSBasicAuth(t *testing.T) {
	dir := t.TempDir()
	root := sysfsfixture.Materialize(t, intelFixture)
	certPath, keyPath, pool := writeSelfSigned(t, dir)
	password := "correct horse battery staple" // Test-only credential, generated per run below.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	webYAML := "tls_server_config:\n  cert_file: " + certPath + "\n  key_file: " + keyPath +
		"\nbasic_auth_users:\n  prometheus: " + string(hash) + "\n"
	if err := os.WriteFile(webCfg, []byte(webYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "aiwatt.yml")
	triton := startGoldenTriton(t)
	if err := os.WriteFile(cfg, []byte(e2eConfig+triton.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	dcgmSrv := startFakeDCGM(t)
	wrap := intelSteps[7]
	writeUJ(t, root, wrap.dir, readUJ(t, root, wrap.dir, "max_energy_range_uj")-uint64(wrap.joules*1e6)/3)
	// The sources of a tick share one deadline, 4/5 of the interval: at 300 ms
	// a loaded test machine still reads the fake dcgm-exporter in time, so the
	// golden exposition shows no timeout.
	p := startAgent(t, nil, "--path.sysfs="+root, "--path.procfs="+fixtureProc, "--agent.interval=300ms", "--config.file="+cfg, "--web.config.file="+webCfg, "--dcgm.exporter-url="+dcgmSrv.url())
	url := "https://" + p.addr + "/metrics"
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	get := func(user, pass string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		return tlsClient.Do(req)
	}
	waitFor(t, "TLS listener", 15*time.Second, func() (bool, error) {
		resp, err := get("", "")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, nil
	})
	if resp, err := get("prometheus", "wrong"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %v %v", resp, err)
	}
	if _, err := scrape(nil, "http://"+p.addr+"/metrics"); err == nil {
		t.Fatal("plain HTTP was served while TLS is configured")
	}
	authed := &http.Client{Timeout: 5 * time.Second, Transport: basicAuth{user: "prometheus", pass: password, rt: tlsClient.Transport}}
	waitFor(t, "first sample over TLS", 15*time.Second, func() (bool, error) {
		body, err := scrape(authed, url)
		v, ok := sampleValue(body, "aiwatt_samples_total")
		return ok && v >= 1 && dcgmSrv.scraped() >= 1 && triton.scraped() >= 1, err
	})
	advance(t, root, intelSteps)
	dcgmSrv.add(gpuMJ)
	triton.serve()
	var last string
	waitFor(t, "injected energy over TLS", 15*time.Second, func() (bool, error) {
		body, err := scrape(authed, url)
		if err != nil {
			return false, err
		}
		last = body
		return stepsDone(body)
	})
	compareGolden(t, "metrics.prom", normalise(last))
	if strings.Contains(p.logs(), password) || strings.Contains(p.logs(), string(hash)) {
		t.Fatal("a credential reached the log")
	}
}

type basicAuth struct {
	user, pass string
	rt         http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.rt.RoundTrip(r)
}
