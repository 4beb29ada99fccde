package carbon

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixtureDir holds the recorded API responses shared by the project.
var fixtureDir = filepath.Join("testdata", "captures")

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("fixture %s: %v (the recorded responses live in carbon/testdata/captures)", name, err)
	}
	return b
}

// fixtureEntry returns one response from a fixture file that maps a request
// description to its response body.
func fixtureEntry(t testing.TB, file, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, file), &m); err != nil {
		t.Fatalf("fixture %s: %v", file, err)
	}
	b, ok := m[key]
	if !ok {
		t.Fatalf("fixture %s has no entry %q", file, key)
	}
	return b
}

// fakeClock is a settable Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *fakeClock { return &fakeClock{t: mustTime(s)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(s string) {
	c.mu.Lock()
	c.t = mustTime(s)
	c.mu.Unlock()
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// secretFile writes value to a temp file and returns a Secret over it.
func secretFile(t testing.TB, value string) (*Secret, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSecret(SecretRef{File: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// server is an httptest server whose handler counts hits per path.
type server struct {
	*httptest.Server
	hits sync.Map // path -> *atomic.Int64
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := s.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count(path string) int64 {
	v, ok := s.hits.Load(path)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// lockedBuffer is a bytes.Buffer safe for a logger used from several
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger(buf *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fixedProvider returns a canned answer; it has no fixed Basis, like a
// third-party Provider would.
type fixedProvider struct {
	name string
	in   Intensity
	err  error
	hits atomic.Int64
}

func (f *fixedProvider) Name() string { return f.name }

func (f *fixedProvider) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	f.hits.Add(1)
	if err := ctx.Err(); err != nil {
		return Intensity{}, err
	}
	return f.in, f.err
}

func approx(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-9*max(1, abs(a), abs(b))
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
