package carbon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// wtServer serves the recorded WattTime responses behind a login that checks
// basic auth against password() and hands out numbered tokens.
type wtServer struct {
	*server
	mu       sync.Mutex
	password string
	tokens   int
	valid    map[string]bool
	reject   bool // answer 401 to the next data request
}

func newWTServer(t *testing.T, password string) *wtServer {
	hist := fixtureEntry(t, "watttime_v3_examples_from_openapi.json", "GET /v3/historical?region=CAISO_NORTH&signal_type=co2_moer&start=...&end=...")
	fc := fixtureEntry(t, "watttime_v3_examples_from_openapi.json", "GET /v3/forecast?region=CAISO_NORTH&signal_type=co2_moer")
	idx := fixtureEntry(t, "watttime_v3_examples_from_openapi.json", "GET /v3/signal-index?region=CAISO_NORTH&signal_type=co2_moer")
	s := &wtServer{password: password, valid: map[string]bool{}}
	s.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/login" {
			u, p, ok := r.BasicAuth()
			if !ok || u != "aiwatt" || p != s.password {
				// A hostile or buggy server echoing the credential back.
				w.Header().Set("X-Debug", "bad password "+p)
				http.Error(w, `{"error":"bad password `+p+`"}`, http.StatusUnauthorized)
				return
			}
			s.tokens++
			tok := "tok-" + string(rune('0'+s.tokens))
			s.valid[tok] = true
			writeJSON(w, []byte(`{"token":"`+tok+`"}`))
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !s.valid[tok] || s.reject {
			s.reject = false
			http.Error(w, "expired", http.StatusUnauthorized)
			return
		}
		q := r.URL.Query()
		if q.Get("region") != "CAISO_NORTH" || q.Get("signal_type") != "co2_moer" {
			t.Errorf("query %s", r.URL.RawQuery)
		}
		switch r.URL.Path {
		case "/v3/historical":
			if q.Get("start") == "" || q.Get("end") == "" {
				t.Errorf("historical without start/end: %s", r.URL.RawQuery)
			}
			writeJSON(w, hist)
		case "/v3/forecast":
			writeJSON(w, fc)
		case "/v3/signal-index":
			writeJSON(w, idx)
		default:
			http.NotFound(w, r)
		}
	})
	return s
}

func (s *wtServer) expireAll() {
	s.mu.Lock()
	s.valid = map[string]bool{}
	s.mu.Unlock()
}

func newWT(t *testing.T, base string, clock Clock, pw *Secret) *WattTime {
	t.Helper()
	w, err := NewWattTime(WattTimeOptions{HTTPOptions: HTTPOptions{BaseURL: base, Clock: clock}, Username: "aiwatt", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWattTimeHistoricalMarginal(t *testing.T) {
	pw, _ := secretFile(t, "pw-1")
	srv := newWTServer(t, "pw-1")
	clock := newClock("2024-01-01T00:00:00Z")
	w := newWT(t, srv.URL, clock, pw)

	in, err := w.Intensity(context.Background(), "CAISO_NORTH", mustTime("2022-07-15T00:07:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	// 860 lbs/MWh × 0.45359237 = 390.0894382 g/kWh.
	if !approx(float64(in.Value), 390.0894382) {
		t.Fatalf("value %v", float64(in.Value))
	}
	if in.Basis != BasisMarginal || in.Provider != "watttime" || in.Zone != "CAISO_NORTH" {
		t.Fatalf("got %s", in)
	}
	if !in.ValidFrom.Equal(mustTime("2022-07-15T00:05:00Z")) || !in.ValidTo.Equal(mustTime("2022-07-15T00:10:00Z")) {
		t.Fatalf("window %s", in)
	}
	p := in.Provenance
	if !p.Estimated || !strings.Contains(p.Method, "imputed") || !strings.Contains(p.Dataset, "binned_regression") ||
		!hasNote(in, "converted from 860 lbs/MWh") || !hasNote(in, "EXAMPLE_WARNING") {
		t.Fatalf("provenance %+v", p)
	}
	if srv.count("/login") != 1 || srv.count("/v3/historical") != 1 {
		t.Fatalf("login %d historical %d", srv.count("/login"), srv.count("/v3/historical"))
	}
}

func TestWattTimeForecastAndSignalIndex(t *testing.T) {
	pw, _ := secretFile(t, "pw-1")
	srv := newWTServer(t, "pw-1")
	clock := newClock("2022-07-15T00:01:00Z")
	w := newWT(t, srv.URL, clock, pw)
	in, err := w.Intensity(context.Background(), "CAISO_NORTH", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !approx(float64(in.Value), 870*0.45359237) || !in.Provenance.Estimated || !hasNote(in, "forecast generated at") {
		t.Fatalf("forecast %s %+v", in, in.Provenance)
	}
	if srv.count("/v3/forecast") != 1 || srv.count("/v3/historical") != 0 {
		t.Fatal("forecast endpoint not used for the current time")
	}
	pct, at, err := w.SignalIndex(context.Background(), "CAISO_NORTH")
	if err != nil || pct != 37.1 || !at.Equal(mustTime("2022-07-15T00:00:00Z")) {
		t.Fatalf("signal index %v %v %v", pct, at, err)
	}
}

func TestWattTimeTokenLifecycle(t *testing.T) {
	pw, pwPath := secretFile(t, "pw-1")
	srv := newWTServer(t, "pw-1")
	clock := newClock("2024-01-01T00:00:00Z")
	w := newWT(t, srv.URL, clock, pw)
	ctx := context.Background()
	at := mustTime("2022-07-15T00:07:00Z")
	call := func() {
		t.Helper()
		if _, err := w.Intensity(ctx, "CAISO_NORTH", at); err != nil {
			t.Fatal(err)
		}
	}

	call()
	call()
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", w, w, w, w), fmt.Sprintf("%+v", struct{ P Provider }{w})} {
		if strings.Contains(out, "pw-1") || strings.Contains(out, "tok-1") {
			t.Fatalf("provider formatting leaks a credential: %s", out)
		}
	}
	if n := srv.count("/login"); n != 1 {
		t.Fatalf("token not reused: %d logins", n)
	}
	clock.Advance(26 * time.Minute) // past the token TTL
	call()
	if n := srv.count("/login"); n != 2 {
		t.Fatalf("token not refreshed on expiry: %d logins", n)
	}
	srv.expireAll() // server-side expiry: 401 → login again → retry succeeds
	call()
	if n := srv.count("/login"); n != 3 {
		t.Fatalf("no re-login after 401: %d logins", n)
	}
	// Password rotation: the file is rewritten (same length) and the server
	// accepts only the new password; the next request logs in with it.
	srv.mu.Lock()
	srv.password = "pw-2"
	srv.mu.Unlock()
	if err := os.WriteFile(pwPath, []byte("pw-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	call()
	if n := srv.count("/login"); n != 4 {
		t.Fatalf("no re-login after password rotation: %d logins", n)
	}
}

func TestWattTimeBadPassword(t *testing.T) {
	pw, _ := secretFile(t, "wrong-password-XYZ")
	srv := newWTServer(t, "pw-1")
	clock := newClock("2024-01-01T00:00:00Z")
	w := newWT(t, srv.URL, clock, pw)
	_, err := w.Intensity(context.Background(), "CAISO_NORTH", mustTime("2022-07-15T00:07:00Z"))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password-XYZ") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if srv.count("/v3/historical") != 0 {
		t.Fatal("data requested without a token")
	}
}

func TestWattTimeRejectsUnknownUnits(t *testing.T) {
	pw, _ := secretFile(t, "pw")
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			writeJSON(w, []byte(`{"token":"t"}`))
			return
		}
		writeJSON(w, []byte(`{"data":[{"point_time":"2022-07-15T00:00:00Z","value":37.1}],"meta":{"data_point_period_seconds":300,"signal_type":"co2_moer","units":"percentile"}}`))
	})
	w := newWT(t, srv.URL, newClock("2024-01-01T00:00:00Z"), pw)
	_, err := w.Intensity(context.Background(), "CAISO_NORTH", mustTime("2022-07-15T00:01:00Z"))
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "percentile") {
		t.Fatalf("err %v", err)
	}
}
