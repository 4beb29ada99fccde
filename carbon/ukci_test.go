package carbon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func ukServer(t *testing.T) *server {
	f := "uk_carbonintensity_api_examples.json"
	national := fixtureEntry(t, f, "GET /intensity")
	rng := fixtureEntry(t, f, "GET /intensity/{from}/{to}  (max range 14 days; from/to format YYYY-MM-DDThh:mmZ, UTC)")
	regional := fixtureEntry(t, f, "GET /regional/intensity/{from}/{to}/regionid/{regionid}")
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "aiwatt" {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
		switch r.URL.Path {
		case "/intensity":
			writeJSON(w, national)
		case "/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z":
			writeJSON(w, rng)
		case "/regional/regionid/3", "/regional/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z/regionid/3":
			writeJSON(w, regional)
		default:
			t.Errorf("unexpected request %s", r.URL.Path)
			http.NotFound(w, r)
		}
	})
}

func TestUKCarbonIntensity(t *testing.T) {
	srv := ukServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, clock, zone, at, path, method string
		want                                GramsPerKWh
	}{
		{"national current uses actual", "2018-01-20T12:10:00Z", "GB", "2018-01-20T12:10:00Z", "/intensity", "actual", 263},
		{"national past uses range", "2018-02-01T00:00:00Z", "GB", "2018-01-20T12:15:00Z", "/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z", "actual", 263},
		{"regional current is forecast", "2018-01-20T12:29:59Z", "GB-3", "2018-01-20T12:29:59Z", "/regional/regionid/3", "forecast", 266},
		{"regional past", "2018-02-01T00:00:00Z", "gb-3", "2018-01-20T12:00:00Z", "/regional/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z/regionid/3", "forecast", 266},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.count(tc.path)
			u, err := NewUKCarbonIntensity(HTTPOptions{BaseURL: srv.URL, Clock: newClock(tc.clock)})
			if err != nil {
				t.Fatal(err)
			}
			in, err := u.Intensity(ctx, tc.zone, mustTime(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			if in.Value != tc.want || in.Provenance.Method != tc.method || in.Provenance.Estimated != (tc.method == "forecast") {
				t.Fatalf("got %s %+v", in, in.Provenance)
			}
			if in.Basis != BasisLocation || in.Provenance.Licence != "CC-BY-4.0" || !in.Contains(mustTime(tc.at)) {
				t.Fatalf("got %s", in)
			}
			if !in.ValidFrom.Equal(mustTime("2018-01-20T12:00:00Z")) || !in.ValidTo.Equal(mustTime("2018-01-20T12:30:00Z")) {
				t.Fatalf("window %s", in)
			}
			if srv.count(tc.path) != before+1 {
				t.Fatalf("%s not requested", tc.path)
			}
		})
	}
}

func TestUKCarbonIntensityZones(t *testing.T) {
	u, _ := NewUKCarbonIntensity(HTTPOptions{BaseURL: "http://127.0.0.1:1"})
	for _, z := range []string{"GB-0", "GB-18", "GB-NIR", "DE", "", "GB-x"} {
		if _, err := u.Intensity(context.Background(), z, mustTime("2018-01-20T12:00:00Z")); !errors.Is(err, ErrUnknownZone) {
			t.Errorf("zone %q: %v", z, err)
		}
	}
	for z, want := range map[string]int{"GB": 0, "GB-1": 1, "GB-17": 17, "GB-ENG": 15, "gb-sct": 16, "GB-WLS": 17} {
		if id, err := parseUKZone(z); err != nil || id != want {
			t.Errorf("%s: %d %v", z, id, err)
		}
	}
}

func TestUKCarbonIntensityForecastWhenNoActual(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []byte(`{"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z","intensity":{"forecast":250,"actual":null,"index":"moderate"}}]}`))
	})
	u, _ := NewUKCarbonIntensity(HTTPOptions{BaseURL: srv.URL, Clock: newClock("2018-01-20T12:05:00Z")})
	in, err := u.Intensity(context.Background(), "GB", mustTime("2018-01-20T12:05:00Z"))
	if err != nil || in.Value != 250 || in.Provenance.Method != "forecast" {
		t.Fatalf("%v %s", err, in)
	}
}

// TestUKCarbonIntensityLiveRegionalShape reads the regional range answer in
// the shape the live API sends ({"data": {"regionid": …, "data": [ … ]}}, an
// object where the published example has a one-element array), built here
// from the recorded example, for a past look-up and for History.
func TestUKCarbonIntensityLiveRegionalShape(t *testing.T) {
	var doc struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(fixtureEntry(t, "uk_carbonintensity_api_examples.json", "GET /regional/intensity/{from}/{to}/regionid/{regionid}"), &doc); err != nil || len(doc.Data) != 1 {
		t.Fatalf("fixture: %v (%d regions)", err, len(doc.Data))
	}
	live := []byte(`{"data": ` + string(doc.Data[0]) + `}`)
	var answer atomic.Pointer[[]byte]
	answer.Store(&live)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/regional/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z/regionid/3" {
			t.Errorf("unexpected request %s", r.URL.Path)
			http.NotFound(w, r)
			return
		}
		writeJSON(w, *answer.Load())
	})
	u, err := NewUKCarbonIntensity(HTTPOptions{BaseURL: srv.URL, Clock: newClock("2018-02-01T00:00:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	in, err := u.Intensity(context.Background(), "GB-3", mustTime("2018-01-20T12:10:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Value != 266 || in.Provenance.Method != "forecast" || in.Zone != "GB-3" {
		t.Fatalf("got %s %+v", in, in.Provenance)
	}
	hist, err := u.History(context.Background(), "GB-3", mustTime("2018-01-20T12:00:00Z"), mustTime("2018-01-20T12:30:00Z"))
	if err != nil || len(hist) != 1 || hist[0].Value != 266 {
		t.Fatalf("history %v %v", hist, err)
	}
	// The object names its region; another region is refused.
	wrong := []byte(strings.Replace(string(live), `"regionid": 3`, `"regionid": 4`, 1))
	if string(wrong) == string(live) {
		t.Fatal("fixture changed: no regionid 3")
	}
	answer.Store(&wrong)
	if _, err := u.Intensity(context.Background(), "GB-3", mustTime("2018-01-20T12:10:00Z")); err == nil {
		t.Fatal("answer for region 4 accepted for GB-3")
	}
}
