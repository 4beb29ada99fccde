package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Client makes GET requests to one API server.
type Client struct {
	base  *url.URL
	http  *http.Client
	ua    string
	cfg   Config
	token *tokenFile
}

// NewClient returns a client of the API server cfg describes. It makes no
// request.
func NewClient(cfg *Config) (*Client, error) {
	base, err := url.Parse(cfg.Host)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("API server URL %q: not a URL", cfg.Host)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg.TLS,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  cfg.DisableCompression,
	}
	if cfg.TLS != nil {
		tr.TLSClientConfig = cfg.TLS.Clone()
	}
	c := &Client{base: base, http: &http.Client{Transport: tr}, ua: cfg.userAgent(), cfg: *cfg}
	if cfg.BearerTokenFile != "" {
		c.token = &tokenFile{path: cfg.BearerTokenFile}
	}
	return c, nil
}

// Host returns the API server's URL.
func (c *Client) Host() string { return c.base.String() }

// Get requests path (e.g. /api/v1/pods) with query and returns the
// response of a 2xx status; its body is the caller's to close. Any other
// status is a *StatusError carrying the API's Status reason and message.
func (c *Client) Get(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	switch {
	case c.token != nil:
		tok, err := c.token.get()
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u.Path, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.Username != "" || c.cfg.Password != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, statusError(resp, u.Path)
}

// GetJSON requests path and decodes the JSON response into out, reading at
// most limit bytes.
func (c *Client) GetJSON(ctx context.Context, path string, query url.Values, limit int64, out any) error {
	resp, err := c.Get(ctx, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(NewLimitReader(resp.Body, limit)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// CloseIdleConnections closes the client's idle connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// StatusError is an API server's answer other than 2xx, or an ERROR event
// of a watch: its HTTP code and the Status object's reason and message.
type StatusError struct {
	// Code is the HTTP status code (410 for an expired resource version).
	Code int
	// Reason is the Status reason, e.g. Expired, Forbidden, NotFound.
	Reason string
	// Message is the Status message.
	Message string
	// Path is the request path.
	Path string
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	if e.Reason != "" {
		return fmt.Sprintf("%s: %d %s: %s", e.Path, e.Code, e.Reason, msg)
	}
	return fmt.Sprintf("%s: %d: %s", e.Path, e.Code, msg)
}

// Status is the API's Status object, as it comes in an error response or
// an ERROR watch event.
type Status struct {
	// Code is the HTTP status code it stands for.
	Code int `json:"code"`
	// Reason is a machine-readable reason (Expired, Gone, Forbidden…).
	Reason string `json:"reason"`
	// Message is the human-readable message.
	Message string `json:"message"`
}

// Err returns the status as a *StatusError of path.
func (s Status) Err(path string) *StatusError {
	return &StatusError{Code: s.Code, Reason: s.Reason, Message: s.Message, Path: path}
}

// statusError reads a non-2xx response's Status (or first bytes of text).
func statusError(resp *http.Response, path string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st Status
	if json.Unmarshal(body, &st) != nil || (st.Reason == "" && st.Message == "") {
		st = Status{Message: strings.TrimSpace(string(body[:min(len(body), 512)]))}
	}
	st.Code = resp.StatusCode
	return st.Err(path)
}

// IsGone reports whether err says that the requested resource version is
// too old (410 Gone, reason Expired or Gone): the client must list again.
func IsGone(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == http.StatusGone || se.Reason == "Expired" || se.Reason == "Gone" ||
		strings.Contains(se.Message, "too old resource version")
}

// tokenFile is a bearer token file, read again whenever it changes (a new
// file, size or modification time): projected service-account tokens are
// replaced about hourly. The last token read stands while the file cannot be
// read.
type tokenFile struct {
	path string

	mu    sync.Mutex
	info  os.FileInfo
	token string
}

func (f *tokenFile) get() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err == nil && f.info != nil && os.SameFile(st, f.info) && st.ModTime().Equal(f.info.ModTime()) && st.Size() == f.info.Size() {
		return f.token, nil
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(f.path)
	}
	tok := strings.TrimSpace(string(b))
	if err == nil && tok == "" {
		err = fmt.Errorf("token file %s is empty", f.path)
	}
	if err != nil {
		if f.token != "" {
			return f.token, nil
		}
		return "", fmt.Errorf("bearer token: %w", err)
	}
	f.info, f.token = st, tok
	return tok, nil
}

// ErrTooLarge is returned by a LimitReader past its limit.
var ErrTooLarge = errors.New("object larger than the limit")

// LimitReader reads from r until a budget of bytes is spent, then fails
// with ErrTooLarge. Reset gives a fresh budget: a stream decoder resets it
// before each object, so the budget caps every object, not the stream.
type LimitReader struct {
	r     io.Reader
	limit int64
	left  int64
}

// NewLimitReader returns a LimitReader of r with a budget of limit bytes.
func NewLimitReader(r io.Reader, limit int64) *LimitReader {
	return &LimitReader{r: r, limit: limit, left: limit}
}

// Reset restores the full budget.
func (l *LimitReader) Reset() { l.left = l.limit }

// Read implements io.Reader.
func (l *LimitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("%w (%d bytes)", ErrTooLarge, l.limit)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
