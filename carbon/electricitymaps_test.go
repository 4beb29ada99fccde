package carbon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// emServer serves the recorded Electricity Maps responses and checks the
// request: token header, User-Agent, zone and emissionFactorType.
func emServer(t *testing.T, token string) *server {
	latest := readFixture(t, "electricitymaps_v3_carbon-intensity_latest.json")
	history := readFixture(t, "electricitymaps_v3_carbon-intensity_history.json")
	past := readFixture(t, "electricitymaps_v3_carbon-intensity_past-range.json")
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("auth-token") != token {
			http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
			return
		}
		if ua := r.Header.Get("User-Agent"); ua != "aiwatt" {
			t.Errorf("User-Agent %q", ua)
		}
		if got := r.URL.Query().Get("emissionFactorType"); got != "direct" {
			t.Errorf("emissionFactorType=%q, want direct", got)
		}
		if r.URL.Query().Get("zone") == "" {
			t.Errorf("no zone in %s", r.URL)
		}
		switch r.URL.Path {
		case "/v3/carbon-intensity/latest":
			writeJSON(w, latest)
		case "/v3/carbon-intensity/history":
			writeJSON(w, history)
		case "/v3/carbon-intensity/past-range":
			q := r.URL.Query()
			if q.Get("start") != "2024-03-18T03:00:00Z" || q.Get("end") != "2024-03-18T04:00:00Z" {
				t.Errorf("past-range start=%s end=%s", q.Get("start"), q.Get("end"))
			}
			writeJSON(w, past)
		default:
			http.NotFound(w, r)
		}
	})
}

func newEM(t *testing.T, base string, clock Clock, tok *Secret) *ElectricityMaps {
	t.Helper()
	em, err := NewElectricityMaps(ElectricityMapsOptions{HTTPOptions: HTTPOptions{BaseURL: base, Clock: clock}, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return em
}

func TestElectricityMapsLatest(t *testing.T) {
	tok, _ := secretFile(t, "em-token-1")
	srv := emServer(t, "em-token-1")
	clock := newClock("2024-03-06T19:20:00Z")
	em := newEM(t, srv.URL, clock, tok)

	in, err := em.Intensity(context.Background(), "US-CAR-DUK", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if in.Value != 216 || in.Zone != "US-CAR-DUK" || in.Basis != BasisLocation || in.Provider != "electricitymaps" {
		t.Fatalf("got %s", in)
	}
	if !in.ValidFrom.Equal(mustTime("2024-03-06T19:00:00Z")) || !in.ValidTo.Equal(mustTime("2024-03-06T20:00:00Z")) {
		t.Fatalf("window %s", in)
	}
	p := in.Provenance
	if !p.Estimated || p.Method != "estimated (TIME_SLICER_AVERAGE)" || !p.FetchedAt.Equal(clock.Now()) {
		t.Fatalf("provenance %+v", p)
	}
	if !strings.Contains(p.Dataset, "emissionFactorType=direct") || !strings.Contains(p.Dataset, "/latest") {
		t.Fatalf("dataset %q", p.Dataset)
	}
	// The recorded response says lifecycle although direct was requested:
	// the provenance reports what the source says, and the discrepancy.
	if p.FactorType != FactorLifecycle || !hasNote(in, "requested emissionFactorType=direct but the response says lifecycle") {
		t.Fatalf("factor type %s notes %v", p.FactorType, p.Notes)
	}
	if srv.count("/v3/carbon-intensity/latest") != 1 {
		t.Fatal("latest not called once")
	}
}

func TestElectricityMapsHistoryPicksContainingHour(t *testing.T) {
	tok, _ := secretFile(t, "em-token-1")
	srv := emServer(t, "em-token-1")
	clock := newClock("2024-03-06T19:30:00Z")
	em := newEM(t, srv.URL, clock, tok)
	ctx := context.Background()
	for _, tc := range []struct {
		at   string
		want GramsPerKWh
	}{
		{"2024-03-05T20:00:00Z", 599}, // oldest point, exactly at its start
		{"2024-03-05T21:59:59Z", 607},
		{"2024-03-06T10:59:59Z", 511},
		{"2024-03-06T11:00:00Z", 492}, // boundary belongs to the new hour
		{"2024-03-06T18:30:00Z", 663}, // estimated point
	} {
		in, err := em.Intensity(ctx, "DE", mustTime(tc.at))
		if err != nil {
			t.Fatalf("%s: %v", tc.at, err)
		}
		if in.Value != tc.want || !in.Contains(mustTime(tc.at)) {
			t.Errorf("%s: got %s, want %v", tc.at, in, tc.want)
		}
	}
	if srv.count("/v3/carbon-intensity/latest") != 0 {
		t.Error("latest called for past hours")
	}

	h, err := em.History(ctx, "DE", mustTime("2024-03-06T08:30:00Z"), mustTime("2024-03-06T10:30:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Value != 583 || h[1].Value != 541 || h[2].Value != 511 {
		t.Fatalf("history %v", h)
	}
}

func TestElectricityMapsPastRange(t *testing.T) {
	tok, _ := secretFile(t, "em-token-1")
	srv := emServer(t, "em-token-1")
	clock := newClock("2024-03-25T00:00:00Z")
	em := newEM(t, srv.URL, clock, tok)
	in, err := em.Intensity(context.Background(), "DK-DK2", mustTime("2024-03-18T03:30:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Value != 167 || in.Zone != "DK-DK2" || in.Provenance.Estimated || in.Provenance.Method != "measured" {
		t.Fatalf("got %s", in)
	}
	if srv.count("/v3/carbon-intensity/past-range") != 1 {
		t.Fatal("past-range not used")
	}
}

func TestElectricityMapsNullAndEmpty(t *testing.T) {
	tok, _ := secretFile(t, "tok")
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v3/carbon-intensity/latest":
			writeJSON(w, []byte(`{"zone":"DE","carbonIntensity":null,"datetime":"2024-03-06T19:00:00.000Z"}`))
		default:
			writeJSON(w, []byte(`{"zone":"DE","history":[]}`))
		}
	})
	clock := newClock("2024-03-06T19:20:00Z")
	em := newEM(t, srv.URL, clock, tok)
	if _, err := em.Intensity(context.Background(), "DE", clock.Now()); !errors.Is(err, ErrNoData) {
		t.Fatalf("null intensity: %v", err)
	}
	if _, err := em.Intensity(context.Background(), "DE", clock.Now().Add(-3*time.Hour)); !errors.Is(err, ErrNoData) {
		t.Fatalf("empty history: %v", err)
	}
	if _, err := em.Intensity(context.Background(), "", clock.Now()); !errors.Is(err, ErrUnknownZone) {
		t.Fatalf("empty zone: %v", err)
	}
}
