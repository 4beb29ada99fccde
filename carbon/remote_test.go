package carbon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// remoteAnswer is what a fake aiwatt carbon service returns: an Electricity
// Maps value reached after the UK API was skipped.
func remoteAnswer(basis Basis) IntensityResponse {
	at := mustTime("2024-03-06T19:20:00Z")
	return IntensityResponse{
		Zone: "DE", At: at, AgeSeconds: 1200, Cached: true, RefreshedAt: at.Add(-time.Minute),
		Intensity: Intensity{
			Zone: "DE", Value: 216, ValidFrom: mustTime("2024-03-06T19:00:00Z"), ValidTo: mustTime("2024-03-06T20:00:00Z"),
			Basis: basis, Provider: "electricitymaps",
			Provenance: Provenance{
				Source: "Electricity Maps", Dataset: "API v3 /v3/carbon-intensity/latest emissionFactorType=direct",
				Licence: "Electricity Maps API terms of use", FactorType: FactorDirect, Method: "measured",
				FetchedAt: at.Add(-time.Minute), Notes: []string{"source updatedAt x"},
				Skipped: []Skip{{Provider: "ukci", Reason: "unknown zone"}},
			},
		},
	}
}

func newRemoteT(t *testing.T, o RemoteOptions) *Remote {
	t.Helper()
	r, err := NewRemote(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRemotePreservesProvenance(t *testing.T) {
	var gotQuery, gotUser, gotPass string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		gotUser, gotPass, _ = r.BasicAuth()
		if r.URL.Path != "/prefix"+IntensityAPIPath || r.Header.Get("User-Agent") != UserAgent {
			http.NotFound(w, r)
			return
		}
		b, _ := json.Marshal(remoteAnswer(Basis(r.URL.Query().Get("basis"))))
		writeJSON(w, b)
	})
	pw, _ := secretFile(t, "secret-remote-pw")
	r := newRemoteT(t, RemoteOptions{HTTPOptions: HTTPOptions{BaseURL: srv.URL + "/prefix"}, Username: "agent", Password: pw})
	at := mustTime("2024-03-06T19:20:00Z")
	in, err := r.Intensity(context.Background(), "DE", at)
	if err != nil {
		t.Fatal(err)
	}
	if gotQuery != "at=2024-03-06T19%3A20%3A00Z&basis=location&zone=DE" || gotUser != "agent" || gotPass != "secret-remote-pw" {
		t.Fatalf("query %q, auth %q/%q", gotQuery, gotUser, gotPass)
	}
	want := remoteAnswer(BasisLocation).Intensity
	if in.Provider != "electricitymaps" || in.Basis != BasisLocation || in.Value != 216 || !in.ValidFrom.Equal(want.ValidFrom) ||
		in.Provenance.Source != "Electricity Maps" || in.Provenance.FactorType != FactorDirect || !in.Provenance.FetchedAt.Equal(want.Provenance.FetchedAt) {
		t.Fatalf("answer %s %+v", in, in.Provenance)
	}
	if len(in.Provenance.Skipped) != 1 || in.Provenance.Skipped[0].String() != "ukci: unknown zone" {
		t.Fatalf("skipped %v", in.Provenance.Skipped)
	}
	if n := in.Provenance.Notes; len(n) != 2 || n[0] != "source updatedAt x" || n[1] != "via aiwatt carbon at "+srv.URL+"/prefix" {
		t.Fatalf("notes %q", n)
	}
	if s := r.String() + r.GoString(); strings.Contains(s, "secret-") {
		t.Fatalf("String leaks the password: %s", s)
	}

	// In a chain the remote value is used like any other.
	chain, err := NewChain(ChainOptions{Clock: newClock("2024-03-06T19:20:00Z")}, Link{Provider: r, MaxAge: time.Hour}, Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	if in, err := chain.Intensity(context.Background(), "DE", at); err != nil || in.Provider != "electricitymaps" {
		t.Fatalf("%v %s", err, in)
	}
}

func TestRemoteStatusesAndBasis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  int
		basis Basis // answered
		check func(error) bool
	}{
		{"404 unknown zone", http.StatusNotFound, "", func(err error) bool { return errors.Is(err, ErrUnknownZone) }},
		{"503 no data", http.StatusServiceUnavailable, "", func(err error) bool {
			var ae *APIError
			return errors.Is(err, ErrNoData) && errors.As(err, &ae) && ae.StatusCode == 503
		}},
		{"400 bad request", http.StatusBadRequest, "", func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && ae.StatusCode == 400 && !errors.Is(err, ErrUnknownZone)
		}},
		{"wrong basis", 0, BasisMarginal, func(err error) bool { return errors.Is(err, ErrBasis) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.code != 0 {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.code)
					json.NewEncoder(w).Encode(IntensityErrorResponse{Error: "no", Zone: "DE"})
					return
				}
				b, _ := json.Marshal(remoteAnswer(tc.basis))
				writeJSON(w, b)
			})
			r := newRemoteT(t, RemoteOptions{HTTPOptions: HTTPOptions{BaseURL: srv.URL}})
			_, err := r.Intensity(context.Background(), "DE", mustTime("2024-03-06T19:20:00Z"))
			if err == nil || !tc.check(err) {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(err.Error(), "aiwatt") {
				t.Fatalf("error does not name the provider: %v", err)
			}
		})
	}
}

func TestNewRemoteRefuses(t *testing.T) {
	pw, _ := secretFile(t, "pw")
	for name, o := range map[string]RemoteOptions{
		"no url":      {},
		"bad url":     {HTTPOptions: HTTPOptions{BaseURL: "ftp://x"}},
		"credentials": {HTTPOptions: HTTPOptions{BaseURL: "http://u:p@x"}},
		"bad basis":   {HTTPOptions: HTTPOptions{BaseURL: "http://x"}, Basis: "hourly"},
		"user, no pw": {HTTPOptions: HTTPOptions{BaseURL: "http://x"}, Username: "u"},
		"pw, no user": {HTTPOptions: HTTPOptions{BaseURL: "http://x"}, Password: pw},
		"no host":     {HTTPOptions: HTTPOptions{BaseURL: "http://"}},
	} {
		if _, err := NewRemote(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMarketIntensity(t *testing.T) {
	loc := remoteAnswer(BasisLocation).Intensity
	f := GramsPerKWh(120)
	for _, tc := range []struct {
		name   string
		m      Market
		want   float64
		source string
	}{
		{"supplier", Market{SupplierFactor: &f, SupplierSource: "Supplier X 2024", CoveredShare: 0.4, CoveredSource: "GOs 2025"}, 0.6 * 120, "Supplier X 2024"},
		{"residual", Market{ResidualFactor: &f, ResidualSource: "AIB 2024"}, 120, "AIB 2024"},
		{"location", Market{CoveredShare: 0.5, CoveredSource: "PPA"}, 108, "Electricity Maps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := tc.m.Intensity(loc)
			if err != nil {
				t.Fatal(err)
			}
			if !approx(float64(in.Value), tc.want) || in.Basis != BasisMarket || in.Provider != MarketProviderName ||
				in.Provenance.Source != tc.source || !in.ValidFrom.Equal(loc.ValidFrom) || len(in.Provenance.Skipped) != 1 {
				t.Fatalf("%s %+v", in, in.Provenance)
			}
			if err := in.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	mg := loc
	mg.Basis = BasisMarginal
	if _, err := (&Market{}).Intensity(mg); !errors.Is(err, ErrBasis) {
		t.Fatalf("marginal accepted: %v", err)
	}
}
