package carbon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSecretRef(t *testing.T) {
	if err := (SecretRef{}).Validate(); err == nil {
		t.Error("empty ref accepted")
	}
	if err := (SecretRef{File: "/a", Env: "B"}).Validate(); err == nil {
		t.Error("ref with file and env accepted")
	}
	if _, err := NewSecret(SecretRef{}, nil); err == nil {
		t.Error("NewSecret accepted an empty ref")
	}
}

func TestSecretFromEnvAndFile(t *testing.T) {
	t.Setenv("AIWATT_TEST_TOKEN", "  env-token-value \n")
	s, err := NewSecret(SecretRef{Env: "AIWATT_TEST_TOKEN"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Value(); err != nil || v != "env-token-value" {
		t.Fatalf("%q %v", v, err)
	}
	t.Setenv("AIWATT_TEST_TOKEN", "")
	if _, err := s.Value(); err == nil || !strings.Contains(err.Error(), "env:AIWATT_TEST_TOKEN") {
		t.Fatalf("empty env: %v", err)
	}

	f, path := secretFile(t, "file-token-value")
	if v, err := f.Value(); err != nil || v != "file-token-value" {
		t.Fatalf("%q %v", v, err)
	}
	os.Remove(path)
	if _, err := f.Value(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %v", err)
	}
}

// The secret's value never shows in any formatting of the Secret.
func TestSecretNeverFormatted(t *testing.T) {
	s, _ := secretFile(t, "s3cr3t-value")
	if _, err := s.Value(); err != nil { // populate the cache
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	l := slog.New(slog.NewJSONHandler(buf, nil))
	l.Info("x", "secret", s, "ref", s.Ref())
	type holder struct{ S *Secret }
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s),
		fmt.Sprintf("%+v %#v", holder{s}, holder{s}), s.String(), s.GoString(), buf.String(),
	}
	for _, o := range outs {
		if strings.Contains(o, "s3cr3t") {
			t.Fatalf("secret formatted: %s", o)
		}
	}
}

// Key file rewritten → the next request uses the new key.
func TestSecretRotationElectricityMaps(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("auth-token"))
		mu.Unlock()
		writeJSON(w, readFixture(t, "electricitymaps_v3_carbon-intensity_latest.json"))
	})
	tok, path := secretFile(t, "key-one")
	buf := &lockedBuffer{}
	tok.logger = debugLogger(buf)
	clock := newClock("2024-03-06T19:20:00Z")
	em := newEM(t, srv.URL, clock, tok)
	ctx := context.Background()
	if _, err := em.Intensity(ctx, "DE", clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Rewrite in place with a value of the same length, keeping the mtime:
	// rotation must not depend on mtime or size changing.
	st, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte("key-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, st.ModTime(), st.ModTime())
	if _, err := em.Intensity(ctx, "DE", clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Kubernetes-style rotation: the path is swapped atomically to a new file.
	tmp := path + ".new"
	os.WriteFile(tmp, []byte("key-three\n"), 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := em.Intensity(ctx, "DE", clock.Now()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "key-one,key-two,key-three" {
		t.Fatalf("tokens sent: %v", seen)
	}
	if !strings.Contains(buf.String(), "secret changed") || strings.Contains(buf.String(), "key-") {
		t.Fatalf("rotation log:\n%s", buf)
	}
}

// A failing authentication, through providers, a chain and the calculator,
// with debug logging on and a server that echoes the credential back: the
// secret appears in no error text and no log line.
func TestSecretNeverInErrorsOrLogs(t *testing.T) {
	const emToken = "EMTOKEN-0123456789"
	const wtPassword = "WTPASS-0123456789"
	echo := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		cred := r.Header.Get("auth-token") + r.Header.Get("Authorization")
		if _, p, ok := r.BasicAuth(); ok {
			cred += p
		}
		w.Header().Set("WWW-Authenticate", "Bearer error="+cred)
		http.Error(w, `{"error":"invalid credential `+cred+`"}`, http.StatusUnauthorized)
	})
	buf := &lockedBuffer{}
	logger := debugLogger(buf)
	clock := newClock("2024-03-06T19:20:00Z")

	emTok, _ := secretFile(t, emToken)
	emTok.logger = logger
	em, _ := NewElectricityMaps(ElectricityMapsOptions{HTTPOptions: HTTPOptions{BaseURL: echo.URL, Clock: clock, Logger: logger}, Token: emTok})
	wtPw, _ := secretFile(t, wtPassword)
	wt, _ := NewWattTime(WattTimeOptions{HTTPOptions: HTTPOptions{BaseURL: echo.URL, Clock: clock, Logger: logger}, Username: "aiwatt", Password: wtPw})

	var texts []string
	collect := func(err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		var ce *ChainError
		if errors.As(err, &ce) {
			for _, s := range ce.Skipped {
				texts = append(texts, s.String(), s.Err.Error())
			}
		}
	}
	ctx := context.Background()
	_, err := em.Intensity(ctx, "DE", clock.Now())
	collect(err)
	_, err = wt.Intensity(ctx, "CAISO_NORTH", clock.Now())
	collect(err)

	chain, _ := NewChain(ChainOptions{Clock: clock, Logger: logger}, Link{Provider: em})
	_, err = chain.Intensity(ctx, "DE", clock.Now())
	collect(err)
	clock.Advance(time.Second)
	_, err = chain.Intensity(ctx, "DE", clock.Now()) // backing off: the remembered reason
	collect(err)
	texts = append(texts, fmt.Sprintf("%+v", chain.Status()))

	mchain, _ := NewChain(ChainOptions{Basis: BasisMarginal, Clock: clock, Logger: logger}, Link{Provider: wt})
	_, err = mchain.Intensity(ctx, "CAISO_NORTH", clock.Now())
	collect(err)

	calc, _ := NewCalculator(chain, "DE", nil)
	_, err = NewAccumulator(calc).Add(ctx, Interval{clock.Now(), clock.Now().Add(time.Minute), 100})
	collect(err)

	texts = append(texts, buf.String(), fmt.Sprintf("%+v %+v", em, wt))
	if !strings.Contains(buf.String(), "falling back") {
		t.Fatalf("expected log lines, got:\n%s", buf)
	}
	for _, s := range texts {
		for _, secret := range []string{emToken, wtPassword, "0123456789"} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q leaked in: %s", secret, s)
			}
		}
	}
	for _, want := range []string{"authentication failed", "electricitymaps", "watttime"} {
		if !strings.Contains(strings.Join(texts, "\n"), want) {
			t.Errorf("errors do not mention %q", want)
		}
	}
}
