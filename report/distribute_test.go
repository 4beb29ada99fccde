package report

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// distFiles writes three report files (one binary) and returns their paths.
func distFiles(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	pdf := make([]byte, 3000)
	for i := range pdf {
		pdf[i] = byte(i * 7)
	}
	files := map[string][]byte{
		"report.json": []byte(`{"organisation":"Inferensys GmbH","totals":{"facility_energy_mwh":12.5,"co2e_location_t":3.25,"co2e_market_t":null}}` + "\n"),
		"report.csv":  []byte("a,b\n1,2\n.\n"),
		"report.pdf":  pdf,
	}
	var paths []string
	for _, n := range []string{"report.json", "report.csv", "report.pdf"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

type put struct {
	path   string
	query  string
	header http.Header
	body   []byte
	length int64
}

// putServer records PUTs; status decides each response (nil: 201).
type putServer struct {
	*httptest.Server
	mu     sync.Mutex
	puts   []put
	status func(n int, r *http.Request) (int, http.Header)
}

func newPutServer(t *testing.T, status func(n int, r *http.Request) (int, http.Header)) *putServer {
	s := &putServer{status: status}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.puts)
		s.puts = append(s.puts, put{r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b, r.ContentLength})
		s.mu.Unlock()
		code := http.StatusCreated
		if r.Method != http.MethodPut {
			code = http.StatusMethodNotAllowed
		} else if s.status != nil {
			var h http.Header
			code, h = s.status(n, r)
			for k, v := range h {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(code)
		if code >= 300 {
			_, _ = io.WriteString(w, "<Error><Code>"+http.StatusText(code)+"</Code><Auth>"+r.Header.Get("Authorization")+"</Auth></Error>")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestUploadPutsEveryFile(t *testing.T) {
	paths := distFiles(t)
	srv := newPutServer(t, nil)
	tok := filepath.Join(t.TempDir(), "token")
	const secret = "s3cr3t-t0ken-value"
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDistributor(DistributeOptions{Upload: &UploadOptions{
		URL: srv.URL + "/bucket/2026-11/?sig=abc", Headers: []string{"X-Team: energy", "x-amz-acl: private"}, BearerTokenFile: tok,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := d.Distribute(context.Background(), paths, &log); err != nil {
		t.Fatalf("Distribute: %v\n%s", err, &log)
	}
	if len(srv.puts) != 3 {
		t.Fatalf("%d PUTs, want 3", len(srv.puts))
	}
	wantType := map[string]string{"report.json": "application/json", "report.csv": "text/csv; charset=utf-8", "report.pdf": "application/pdf"}
	for i, p := range paths {
		got, name := srv.puts[i], filepath.Base(p)
		want, _ := os.ReadFile(p)
		if got.path != "/bucket/2026-11/"+name || got.query != "sig=abc" {
			t.Errorf("PUT %s?%s, want /bucket/2026-11/%s?sig=abc", got.path, got.query, name)
		}
		if !bytes.Equal(got.body, want) || got.length != int64(len(want)) {
			t.Errorf("%s: body %d bytes (Content-Length %d), not byte-equal to the %d-byte file", name, len(got.body), got.length, len(want))
		}
		if h := got.header; h.Get("Content-Type") != wantType[name] || h.Get("Authorization") != "Bearer "+secret ||
			h.Get("X-Team") != "energy" || h.Get("X-Amz-Acl") != "private" {
			t.Errorf("%s: headers %v", name, h)
		}
		if !strings.Contains(log.String(), "upload "+name+" -> ") {
			t.Errorf("no summary line for %s:\n%s", name, &log)
		}
	}
	if strings.Count(log.String(), ": ok, 201 Created") != 3 || strings.Contains(log.String(), secret) || strings.Contains(log.String(), "sig=abc") {
		t.Errorf("summary must say ok three times and hold neither the token nor the query:\n%s", &log)
	}
}

func TestUploadTemplateAndRetry(t *testing.T) {
	paths := distFiles(t)[:1]
	srv := newPutServer(t, func(n int, r *http.Request) (int, http.Header) {
		switch n {
		case 0:
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}}
		case 1:
			return http.StatusTooManyRequests, nil
		}
		return http.StatusOK, nil
	})
	var waits []time.Duration
	u := &UploadOptions{URL: srv.URL + "/up/{file}.v1", Backoff: 50 * time.Millisecond,
		sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	d, err := NewDistributor(DistributeOptions{Upload: u})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := d.Distribute(context.Background(), paths, &log); err != nil {
		t.Fatalf("Distribute: %v\n%s", err, &log)
	}
	want, _ := os.ReadFile(paths[0])
	if len(srv.puts) != 3 || srv.puts[2].path != "/up/report.json.v1" || !bytes.Equal(srv.puts[2].body, want) || !bytes.Equal(srv.puts[0].body, want) {
		t.Fatalf("PUTs: %+v", srv.puts)
	}
	// Retry-After: 7 is honoured; the second wait is the backoff doubled.
	if len(waits) != 2 || waits[0] != 7*time.Second || waits[1] != 100*time.Millisecond {
		t.Errorf("waits %v, want [7s 100ms]", waits)
	}
	if !strings.Contains(log.String(), "ok, 200 OK, ") || !strings.Contains(log.String(), "3 attempt(s)") {
		t.Errorf("summary: %s", &log)
	}
}

func TestUploadForbiddenFailsClearly(t *testing.T) {
	paths := distFiles(t)
	srv := newPutServer(t, func(n int, r *http.Request) (int, http.Header) {
		if strings.HasSuffix(r.URL.Path, ".csv") {
			return http.StatusForbidden, nil
		}
		return http.StatusCreated, nil
	})
	tok := filepath.Join(t.TempDir(), "token")
	const secret = "tok-that-must-not-leak"
	if err := os.WriteFile(tok, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDistributor(DistributeOptions{Upload: &UploadOptions{URL: srv.URL, BearerTokenFile: tok,
		sleep: func(context.Context, time.Duration) error { t.Error("a 403 must not be retried"); return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	err = d.Distribute(context.Background(), paths, &log)
	if err == nil || err.Error() != "distribution failed: upload report.csv" {
		t.Errorf("error %v, want it to name upload report.csv only", err)
	}
	if len(srv.puts) != 3 {
		t.Errorf("%d PUTs, want 3 (the others still uploaded, the 403 not retried)", len(srv.puts))
	}
	if !strings.Contains(log.String(), "upload report.csv -> "+srv.URL+"/report.csv: FAILED: 403 Forbidden") {
		t.Errorf("summary lacks the 403:\n%s", &log)
	}
	if strings.Contains(log.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Errorf("the bearer token leaked (the server echoed it):\n%s", &log)
	}
}

func TestUploadOptionErrors(t *testing.T) {
	for _, u := range []UploadOptions{
		{URL: "ftp://x/"},
		{URL: "http://x/", Headers: []string{"NoColon"}},
		{URL: "http://x/", BearerTokenFile: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, err := NewDistributor(DistributeOptions{Upload: &u}); err == nil {
			t.Errorf("%+v: no error", u)
		}
	}
}

// fakeSMTP is a minimal SMTP server on 127.0.0.1: EHLO, optional STARTTLS,
// AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
type fakeSMTP struct {
	addr string
	tls  *tls.Config // nil: no STARTTLS
	mu   sync.Mutex
	auth []string // decoded AUTH PLAIN payloads
	from string
	rcpt []string
	data []byte
	tlsd bool
	ehlo string // the name sent with EHLO
	done chan struct{}
}

func startSMTP(t *testing.T, tlsConf *tls.Config) *fakeSMTP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSMTP{addr: l.Addr().String(), tls: tlsConf, done: make(chan struct{})}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		defer close(s.done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		s.serve(conn)
	}()
	return s
}

func (s *fakeSMTP) serve(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	say := func(line string) { _, _ = w.WriteString(line + "\r\n"); _ = w.Flush() }
	say("220 fake ESMTP")
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			s.mu.Lock()
			s.ehlo = arg
			s.mu.Unlock()
			ext := []string{"250-fake"}
			if s.tls != nil && !secure {
				ext = append(ext, "250-STARTTLS")
			}
			say(strings.Join(append(ext, "250 AUTH PLAIN"), "\r\n"))
		case "STARTTLS":
			if s.tls == nil {
				say("502 no")
				continue
			}
			say("220 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure = tc, true
			s.mu.Lock()
			s.tlsd = true
			s.mu.Unlock()
			r, w = bufio.NewReader(tc), bufio.NewWriter(tc)
		case "AUTH":
			mech, payload, _ := strings.Cut(arg, " ")
			b, err := base64.StdEncoding.DecodeString(payload)
			if mech != "PLAIN" || err != nil {
				say("504 unsupported")
				continue
			}
			s.mu.Lock()
			s.auth = append(s.auth, string(b))
			s.mu.Unlock()
			say("235 ok")
		case "MAIL":
			s.mu.Lock()
			s.from = arg
			s.mu.Unlock()
			say("250 ok")
		case "RCPT":
			s.mu.Lock()
			s.rcpt = append(s.rcpt, arg)
			s.mu.Unlock()
			say("250 ok")
		case "DATA":
			say("354 go")
			var buf bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				buf.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			s.mu.Lock()
			s.data = buf.Bytes()
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		case "RSET", "NOOP":
			say("250 ok")
		default:
			say("500 what")
		}
	}
}

// wait returns after the server's one connection has ended.
func (s *fakeSMTP) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("fake SMTP server did not finish")
	}
}

func writeSecret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMessage parses the received message and compares the attachments
// byte for byte with the files.
func checkMessage(t *testing.T, raw []byte, paths []string, wantAttached []string, bodyWants ...string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subj != "aiwatt report 2026-11-01–2026-12-01" {
		t.Errorf("subject %q (%v)", subj, err)
	}
	if m.Header.Get("To") != "cfo@example.com, esg@example.com" || m.Header.Get("From") != "aiwatt@example.com" {
		t.Errorf("To %q From %q", m.Header.Get("To"), m.Header.Get("From"))
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var body string
	got := map[string][]byte{}
	var order []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // mime/multipart decodes quoted-printable itself.
		if p.FileName() == "" {
			body = string(b)
			continue
		}
		if p.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Errorf("%s: not base64", p.FileName())
		}
		dec, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		got[p.FileName()] = dec
		order = append(order, p.FileName())
	}
	if strings.Join(order, ",") != strings.Join(wantAttached, ",") {
		t.Errorf("attached %v, want %v", order, wantAttached)
	}
	for _, p := range paths {
		if b, ok := got[filepath.Base(p)]; ok {
			want, _ := os.ReadFile(p)
			if !bytes.Equal(b, want) {
				t.Errorf("%s: attachment not byte-equal to the file", filepath.Base(p))
			}
		}
	}
	for _, w := range append(bodyWants, "Inferensys GmbH: facility energy 12.5 MWh; location-based 3.25 t CO2e; market-based no data t CO2e.") {
		if !strings.Contains(body, w) {
			t.Errorf("body lacks %q:\n%s", w, body)
		}
	}
}

var period = DistributeOptions{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}

func TestEmailPlaintextRefusesCredentials(t *testing.T) {
	paths := distFiles(t)
	const password = "hunter2-smtp-pw"
	opts := func(addr string, insecure bool) DistributeOptions {
		o := period
		o.Email = &EmailOptions{SMTP: addr, From: "aiwatt@example.com", To: []string{"cfo@example.com", "esg@example.com"},
			Username: "reporter", PasswordFile: writeSecret(t, password), Insecure: insecure, MaxAttachmentBytes: 2000}
		return o
	}

	// No STARTTLS offered, no --email.insecure: nothing is sent.
	srv := startSMTP(t, nil)
	d, err := NewDistributor(opts(srv.addr, false))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := d.Distribute(context.Background(), paths, &log); err == nil || err.Error() != "distribution failed: email" {
		t.Errorf("error %v, want distribution failed: email", err)
	}
	srv.wait(t)
	if len(srv.auth) != 0 || srv.data != nil {
		t.Errorf("credentials or data sent over plaintext: auth %q", srv.auth)
	}
	if !strings.Contains(log.String(), "FAILED: refusing to send the report or credentials over a plaintext connection") || strings.Contains(log.String(), password) {
		t.Errorf("summary:\n%s", &log)
	}

	// With --email.insecure the message goes through; the PDF is over the limit.
	srv = startSMTP(t, nil)
	d, err = NewDistributor(opts(srv.addr, true))
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if err := d.Distribute(context.Background(), paths, &log); err != nil {
		t.Fatalf("Distribute: %v\n%s", err, &log)
	}
	srv.wait(t)
	if len(srv.auth) != 1 || srv.auth[0] != "\x00reporter\x00"+password {
		t.Errorf("AUTH PLAIN payloads %q", srv.auth)
	}
	if srv.from != "FROM:<aiwatt@example.com>" || strings.Join(srv.rcpt, ";") != "TO:<cfo@example.com>;TO:<esg@example.com>" {
		t.Errorf("MAIL %q RCPT %q", srv.from, srv.rcpt)
	}
	if strings.Contains(log.String(), password) || !strings.Contains(log.String(), "(plaintext): ok, 2 of 3 file(s) attached") {
		t.Errorf("summary:\n%s", &log)
	}
	checkMessage(t, srv.data, paths, []string{"report.json", "report.csv"}, "Not attached (larger than 2000 bytes", "report.pdf (3000 bytes)")
}

// selfSigned returns a server certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestEmailSTARTTLS(t *testing.T) {
	paths := distFiles(t)
	cert, caPEM := selfSigned(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	const password = "pw-over-tls"
	o := period
	o.Email = &EmailOptions{From: "aiwatt@example.com", To: []string{"cfo@example.com", "esg@example.com"},
		Username: "reporter", PasswordFile: writeSecret(t, password), CAFile: ca}

	srv := startSMTP(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	o.Email.SMTP = srv.addr
	d, err := NewDistributor(o)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := d.Distribute(context.Background(), paths, &log); err != nil {
		t.Fatalf("Distribute: %v\n%s", err, &log)
	}
	srv.wait(t)
	if !srv.tlsd || len(srv.auth) != 1 || srv.auth[0] != "\x00reporter\x00"+password {
		t.Errorf("STARTTLS %v, AUTH %q", srv.tlsd, srv.auth)
	}
	if !strings.Contains(log.String(), "(starttls): ok, 3 of 3 file(s) attached") {
		t.Errorf("summary:\n%s", &log)
	}
	checkMessage(t, srv.data, paths, []string{"report.json", "report.csv", "report.pdf"}, "Attached:")

	// Without the CA file the self-signed certificate is refused.
	srv = startSMTP(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	o.Email.SMTP, o.Email.CAFile = srv.addr, ""
	d, err = NewDistributor(o)
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if err := d.Distribute(context.Background(), paths, &log); err == nil || !strings.Contains(log.String(), "STARTTLS") {
		t.Errorf("untrusted certificate accepted: %v\n%s", err, &log)
	}
	srv.wait(t)
	if len(srv.auth) != 0 {
		t.Errorf("credentials sent after a failed handshake")
	}
}

func TestEmailOptionErrors(t *testing.T) {
	for _, e := range []EmailOptions{
		{SMTP: "nohostport", From: "a@b", To: []string{"c@d"}},
		{SMTP: "h:25", From: "a@b"},
		{SMTP: "h:25", From: "a@b", To: []string{"c@d\r\nBcc: e@f"}},
		{SMTP: "h:25", From: "a@b", To: []string{"c@d"}, TLS: "ssl"},
		{SMTP: "h:25", From: "a@b", To: []string{"c@d"}, PasswordFile: "/x"},
	} {
		if _, err := NewDistributor(DistributeOptions{Email: &e}); err == nil {
			t.Errorf("%+v: no error", e)
		}
	}
}

// TestEmailNeverPlaintextUnlessInsecure checks that a report without
// credentials is not sent in plaintext either, that --email.tls=none needs
// --email.insecure, and that EHLO carries this host's name.
func TestEmailNeverPlaintextUnlessInsecure(t *testing.T) {
	paths := distFiles(t)
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	for _, tc := range []struct {
		name     string
		tls      string
		insecure bool
		sent     bool
	}{
		{"starttls not offered", "", false, false},
		{"starttls not offered, insecure", "starttls", true, true},
		{"none, insecure", "none", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTP(t, nil)
			o := period
			o.Email = &EmailOptions{SMTP: srv.addr, From: "aiwatt@example.com", To: []string{"esg@example.com"}, TLS: tc.tls, Insecure: tc.insecure}
			d, err := NewDistributor(o)
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			err = d.Distribute(context.Background(), paths, &log)
			srv.wait(t)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if (srv.data != nil) != tc.sent || (err == nil) != tc.sent {
				t.Fatalf("sent %v, error %v, want sent %v\n%s", srv.data != nil, err, tc.sent, &log)
			}
			if !tc.sent && !strings.Contains(log.String(), "refusing to send the report or credentials over a plaintext connection") {
				t.Errorf("summary:\n%s", &log)
			}
			if tc.sent && !strings.Contains(log.String(), "(plaintext): ok") {
				t.Errorf("summary:\n%s", &log)
			}
			if srv.ehlo != host {
				t.Errorf("EHLO %q, want the host name %q", srv.ehlo, host)
			}
		})
	}
	o := period
	o.Email = &EmailOptions{SMTP: "127.0.0.1:25", From: "aiwatt@example.com", To: []string{"esg@example.com"}, TLS: "none"}
	if _, err := NewDistributor(o); err == nil || !strings.Contains(err.Error(), "--email.insecure") {
		t.Fatalf("--email.tls=none without --email.insecure: %v", err)
	}
}
