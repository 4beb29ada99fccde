package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/internal/retry"
)

// Distribution: after Write, the report files can be PUT to an HTTP store
// and mailed over SMTP. Only the standard library is used (the aiwatt binary
// that runs `aiwatt report` is the node agent and links no cloud SDK): S3
// and other object stores are reached through plain HTTP PUT (a bucket or
// prefix that accepts PUT, or a URL carrying a prefix-scoped token); AWS S3
// with SigV4 credentials is left to `aws s3 cp`. Secrets (bearer tokens,
// header values, SMTP passwords, URL query strings, which may hold
// signatures) never appear in log lines or errors.

// UploadOptions configures HTTP PUT upload.
type UploadOptions struct {
	// URL is a prefix (each file is PUT to URL/FILENAME, any query string
	// kept) or, when it contains "{file}", a template in which {file} is
	// replaced by the file name.
	URL string
	// Headers are "Key: Value" lines added to every request.
	Headers []string
	// BearerTokenFile, when set, holds a token sent as
	// "Authorization: Bearer TOKEN".
	BearerTokenFile string
	// Timeout bounds each attempt; default 1m.
	Timeout time.Duration
	// Retries is the number of retries after the first attempt on network
	// errors, 5xx and 429; default 4 (negative: none).
	Retries int
	// Backoff is the first retry's wait, doubled each retry (capped at
	// MaxBackoff); a longer Retry-After from the server is waited instead
	// (internal/retry); default 1s.
	Backoff time.Duration
	// MaxBackoff caps a wait, Retry-After included; default 5m.
	MaxBackoff time.Duration
	// Client, when set, replaces http.DefaultClient's transport settings.
	Client *http.Client

	sleep func(context.Context, time.Duration) error // tests
}

// EmailOptions configures sending the report files over SMTP.
type EmailOptions struct {
	// SMTP is the server's host:port.
	SMTP    string
	From    string
	To      []string
	Subject string // default "aiwatt report FROM–TO"
	// Username and PasswordFile enable AUTH PLAIN.
	Username     string
	PasswordFile string
	// TLS is "starttls" (default: upgrade when the server offers it), "tls"
	// (implicit TLS, usually port 465) or "none".
	TLS string
	// CAFile, when set, is a PEM bundle that replaces the system roots.
	CAFile string
	// Insecure allows sending over a plaintext connection (--email.tls=none,
	// or a server that offers no STARTTLS): the report and any credentials
	// then cross the network unencrypted. Without it nothing is sent in
	// plaintext.
	Insecure bool
	// MaxAttachmentBytes: larger files are not attached (the body says so);
	// default 10 MiB.
	MaxAttachmentBytes int64
	// Timeout bounds the whole SMTP conversation; default 1m.
	Timeout time.Duration
}

// DistributeOptions selects the distribution steps; a nil step is skipped.
type DistributeOptions struct {
	Upload *UploadOptions
	Email  *EmailOptions
	// From and To are the report period, for the default subject.
	From, To time.Time
}

// Distributor runs the configured distribution steps. NewDistributor
// validates the options and reads the secret files, so that mistakes are
// found before the report is built.
type Distributor struct {
	opts     DistributeOptions
	headers  http.Header
	token    string
	password string
	roots    *x509.CertPool
}

// NewDistributor validates opts and loads the token, password and CA files.
func NewDistributor(opts DistributeOptions) (*Distributor, error) {
	d := &Distributor{opts: opts}
	if u := opts.Upload; u != nil {
		if err := checkUploadURL(u.URL); err != nil {
			return nil, fmt.Errorf("--upload.url: %w", err)
		}
		d.headers = http.Header{}
		for _, h := range u.Headers {
			k, v, ok := strings.Cut(h, ":")
			k = strings.TrimSpace(k)
			if !ok || k == "" || strings.ContainsAny(k, " \t\r\n") || strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("--upload.header: want \"Key: Value\", got a header named %q", k)
			}
			d.headers.Add(k, strings.TrimSpace(v))
		}
		if u.BearerTokenFile != "" {
			b, err := os.ReadFile(u.BearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("--upload.bearer-token-file: %w", err)
			}
			d.token = strings.TrimSpace(string(b))
			if d.token == "" || strings.ContainsAny(d.token, "\r\n") {
				return nil, fmt.Errorf("--upload.bearer-token-file %s: want one non-empty line", u.BearerTokenFile)
			}
		}
	}
	if e := opts.Email; e != nil {
		if _, _, err := net.SplitHostPort(e.SMTP); err != nil {
			return nil, fmt.Errorf("--email.smtp: want host:port: %w", err)
		}
		if e.From == "" || len(e.To) == 0 {
			return nil, errors.New("--email.smtp needs --email.from and at least one --email.to")
		}
		for _, a := range append([]string{e.From}, e.To...) {
			if strings.ContainsAny(a, "\r\n<>") || !strings.Contains(a, "@") {
				return nil, fmt.Errorf("--email.from/--email.to: %q is not an address", a)
			}
		}
		switch e.TLS {
		case "", "starttls", "tls":
		case "none":
			if !e.Insecure {
				return nil, errors.New("--email.tls=none would send the report in plaintext; add --email.insecure to allow that")
			}
		default:
			return nil, fmt.Errorf("--email.tls: want starttls, tls or none, got %q", e.TLS)
		}
		if e.PasswordFile != "" {
			if e.Username == "" {
				return nil, errors.New("--email.password-file needs --email.username")
			}
			b, err := os.ReadFile(e.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("--email.password-file: %w", err)
			}
			d.password = strings.TrimRight(string(b), "\r\n")
		}
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--email.tls-ca-file: %w", err)
			}
			d.roots = x509.NewCertPool()
			if !d.roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--email.tls-ca-file %s: no PEM certificates", e.CAFile)
			}
		}
	}
	return d, nil
}

func checkUploadURL(s string) error {
	u, err := url.Parse(strings.ReplaceAll(s, "{file}", "x"))
	if err != nil {
		return errors.New("not a URL") // url.Error would repeat the URL, query and all.
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL")
	}
	return nil
}

// Distribute runs the configured steps on the files at paths, writes one
// summary line per file and step to w, and returns an error naming every
// step that failed (nil when all succeeded or none was configured).
func (d *Distributor) Distribute(ctx context.Context, paths []string, w io.Writer) error {
	var failed []string
	if d.opts.Upload != nil {
		for _, p := range paths {
			if err := d.upload(ctx, p, w); err != nil {
				failed = append(failed, "upload "+filepath.Base(p))
			}
		}
	}
	if d.opts.Email != nil {
		if err := d.email(ctx, paths, w); err != nil {
			failed = append(failed, "email")
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("distribution failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// contentType is the MIME type of a report file by extension.
func contentType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return "application/json"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".pdf":
		return "application/pdf"
	}
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// uploadURL is where the file named name goes.
func uploadURL(tmpl, name string) string {
	if strings.Contains(tmpl, "{file}") {
		return strings.ReplaceAll(tmpl, "{file}", url.PathEscape(name))
	}
	base, query, hasQuery := strings.Cut(tmpl, "?")
	s := strings.TrimRight(base, "/") + "/" + url.PathEscape(name)
	if hasQuery {
		s += "?" + query
	}
	return s
}

// redact drops a URL's user info and query (which may carry signatures).
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

func (d *Distributor) upload(ctx context.Context, path string, w io.Writer) error {
	u := d.opts.Upload
	name := filepath.Base(path)
	target := uploadURL(u.URL, name)
	shown := redact(target)
	report := func(err error, format string, a ...any) error {
		if err != nil {
			fmt.Fprintf(w, "upload %s -> %s: FAILED: %v\n", name, shown, err)
		} else {
			fmt.Fprintf(w, "upload %s -> %s: "+format+"\n", append([]any{name, shown}, a...)...)
		}
		return err
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return report(err, "")
	}
	client := u.Client
	if client == nil {
		client = &http.Client{}
	}
	timeout, backoff, maxBackoff, retries := u.Timeout, u.Backoff, u.MaxBackoff, u.Retries
	if timeout <= 0 {
		timeout = time.Minute
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	if retries == 0 {
		retries = 4
	} else if retries < 0 {
		retries = 0
	}
	policy := retry.Policy{Attempts: retries + 1, Base: backoff, Max: maxBackoff, Sleep: u.sleep}
	var status string
	attempts, err := policy.Do(ctx, func(ctx context.Context) error {
		var err error
		status, err = d.put(ctx, client, target, name, body, timeout)
		return err
	})
	if err != nil {
		return report(err, "")
	}
	return report(nil, "ok, %s, %d bytes, %d attempt(s)", status, len(body), attempts)
}

// permanentError is an HTTP status not worth retrying.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// transientError is a network error, a 5xx or a 429: worth retrying, after
// the wait the server asked for, if any.
type transientError struct {
	msg   string
	after time.Duration
}

func (e *transientError) Error() string             { return e.msg }
func (e *transientError) Retryable() bool           { return true }
func (e *transientError) RetryAfter() time.Duration { return e.after }

// put makes one attempt. It returns the status on success, else a
// *transientError (retried) or a *permanentError.
func (d *Distributor) put(ctx context.Context, client *http.Client, target, name string, body []byte, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return "", &permanentError{"cannot build request"}
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", contentType(name))
	req.Header.Set("User-Agent", "aiwatt-report")
	for k, vs := range d.headers {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL (query and all): keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", &transientError{msg: fmt.Sprintf("PUT: %v", err)}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.Status, nil
	}
	msg := resp.Status
	if s := strings.Join(strings.Fields(string(snippet)), " "); s != "" {
		if d.token != "" {
			s = strings.ReplaceAll(s, d.token, "[redacted]")
		}
		msg += ": " + s
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return "", &transientError{msg: msg, after: retry.ParseAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return "", &permanentError{msg}
}

// DefaultSubject is the subject used when EmailOptions.Subject is empty.
func DefaultSubject(from, to time.Time) string {
	f := func(t time.Time) string {
		t = t.UTC()
		if t.Equal(t.Truncate(24 * time.Hour)) {
			return t.Format(time.DateOnly)
		}
		return t.Format(time.RFC3339)
	}
	return "aiwatt report " + f(from) + "–" + f(to)
}

// summaryLine is a one-line executive summary from report.json, or "".
func summaryLine(paths []string) string {
	for _, p := range paths {
		if filepath.Base(p) != "report.json" {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		var r struct {
			Organisation string `json:"organisation"`
			Totals       map[string]json.RawMessage
		}
		if json.Unmarshal(raw, &r) != nil {
			return ""
		}
		v := func(k string) string {
			s := string(r.Totals[k])
			if s == "" || s == "null" {
				return "no data"
			}
			return s
		}
		org := r.Organisation
		if org == "" {
			org = "(organisation not configured)"
		}
		return fmt.Sprintf("%s: facility energy %s MWh; location-based %s t CO2e; market-based %s t CO2e.",
			org, v("facility_energy_mwh"), v("co2e_location_t"), v("co2e_market_t"))
	}
	return ""
}

// buildMessage returns the multipart/mixed message and the names attached.
func (d *Distributor) buildMessage(paths []string, now time.Time) ([]byte, []string, error) {
	e := d.opts.Email
	limit := e.MaxAttachmentBytes
	if limit <= 0 {
		limit = 10 << 20
	}
	subject := e.Subject
	if subject == "" {
		subject = DefaultSubject(d.opts.From, d.opts.To)
	}
	type file struct {
		name string
		data []byte
		size int64
	}
	var attach, skipped []file
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if fi.Size() > limit {
			skipped = append(skipped, file{name: filepath.Base(p), size: fi.Size()})
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		attach = append(attach, file{name: filepath.Base(p), data: b, size: int64(len(b))})
	}
	var text strings.Builder
	fmt.Fprintf(&text, "%s.\n\n", subject)
	if s := summaryLine(paths); s != "" {
		fmt.Fprintf(&text, "%s\n\n", s)
	}
	var names []string
	if len(attach) > 0 {
		text.WriteString("Attached:\n")
		for _, f := range attach {
			fmt.Fprintf(&text, "  %s (%d bytes)\n", f.name, f.size)
			names = append(names, f.name)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&text, "Not attached (larger than %d bytes; see the report directory or upload):\n", limit)
		for _, f := range skipped {
			fmt.Fprintf(&text, "  %s (%d bytes)\n", f.name, f.size)
		}
	}

	var msg bytes.Buffer
	mw := multipart.NewWriter(&msg)
	var id [12]byte
	_, _ = rand.Read(id[:])
	host := "aiwatt.invalid"
	if at := strings.LastIndex(e.From, "@"); at >= 0 {
		host = strings.Trim(e.From[at+1:], "> ")
	}
	hdr := []string{
		"From: " + e.From,
		"To: " + strings.Join(e.To, ", "),
		"Subject: " + mime.QEncoding.Encode("utf-8", subject),
		"Date: " + now.Format(time.RFC1123Z),
		"Message-ID: <" + hex.EncodeToString(id[:]) + "@" + host + ">",
		"MIME-Version: 1.0",
		"Content-Type: multipart/mixed; boundary=" + mw.Boundary(),
	}
	for _, h := range hdr {
		if strings.ContainsAny(h, "\r\n") {
			return nil, nil, errors.New("header contains a line break")
		}
	}
	// Write the headers before any part: the multipart writer appends to msg.
	var out bytes.Buffer
	out.WriteString(strings.Join(hdr, "\r\n") + "\r\n\r\n")

	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, nil, err
	}
	qp := quotedprintable.NewWriter(pw)
	if _, err := io.WriteString(qp, strings.ReplaceAll(text.String(), "\n", "\r\n")); err != nil {
		return nil, nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, nil, err
	}
	for _, f := range attach {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(strings.Split(contentType(f.name), ";")[0], map[string]string{"name": f.name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": f.name})},
			"Content-Transfer-Encoding": {"base64"},
		})
		if err != nil {
			return nil, nil, err
		}
		enc := base64.StdEncoding.EncodeToString(f.data)
		for len(enc) > 76 {
			if _, err := io.WriteString(pw, enc[:76]+"\r\n"); err != nil {
				return nil, nil, err
			}
			enc = enc[76:]
		}
		if _, err := io.WriteString(pw, enc+"\r\n"); err != nil {
			return nil, nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, nil, err
	}
	out.Write(msg.Bytes())
	return out.Bytes(), names, nil
}

// plainAuth is AUTH PLAIN without net/smtp's built-in TLS check (which
// exempts localhost); the TLS policy is enforced in email instead.
type plainAuth struct{ user, pass string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

func (d *Distributor) email(ctx context.Context, paths []string, w io.Writer) error {
	e := d.opts.Email
	to := strings.Join(e.To, ", ")
	msg, names, err := d.buildMessage(paths, time.Now())
	if err == nil {
		var mode string
		mode, err = d.send(ctx, msg)
		if err == nil {
			fmt.Fprintf(w, "email %s to %s via %s (%s): ok, %d of %d file(s) attached\n", strings.Join(names, ","), to, e.SMTP, mode, len(names), len(paths))
			return nil
		}
	}
	if d.password != "" {
		err = errors.New(strings.ReplaceAll(err.Error(), d.password, "[redacted]"))
	}
	fmt.Fprintf(w, "email to %s via %s: FAILED: %v\n", to, e.SMTP, err)
	return err
}

// heloName is the name sent with EHLO: this host's name, as mail servers
// expect (RFC 5321 § 4.1.1.1), or "localhost" when it has none usable.
func heloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t\r\n") {
		return "localhost"
	}
	return h
}

// send delivers msg and returns the connection's security ("tls",
// "starttls" or "plaintext").
func (d *Distributor) send(ctx context.Context, msg []byte) (string, error) {
	e := d.opts.Email
	host, _, _ := net.SplitHostPort(e.SMTP)
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tlsConf := &tls.Config{ServerName: host, RootCAs: d.roots, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{}
	var conn net.Conn
	var err error
	mode := e.TLS
	if mode == "" {
		mode = "starttls"
	}
	if mode == "tls" {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsConf}).DialContext(ctx, "tcp", e.SMTP)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", e.SMTP)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello(heloName()); err != nil {
		return "", err
	}
	security := "plaintext"
	if mode == "tls" {
		security = "tls"
	} else if mode == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return "", fmt.Errorf("STARTTLS: %w", err)
			}
			security = "starttls"
		}
	}
	if security == "plaintext" && !e.Insecure {
		return "", fmt.Errorf("refusing to send the report or credentials over a plaintext connection to %s (--email.tls=%s; the server offered no STARTTLS); use TLS, or --email.insecure to allow plaintext", e.SMTP, mode)
	}
	if e.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return "", errors.New("server does not offer AUTH")
		}
		if err := c.Auth(plainAuth{e.Username, d.password}); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return "", fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, rcpt := range e.To {
		if err := c.Rcpt(rcpt); err != nil {
			return "", fmt.Errorf("RCPT TO %s: %w", rcpt, err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if _, err := wc.Write(msg); err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	_ = c.Quit()
	return security, nil
}
