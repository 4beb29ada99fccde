package carbon

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func decodeStrict(t *testing.T, src string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewBufferString(src))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	return c, err
}

func TestConfigYAMLAndBuild(t *testing.T) {
	_, tokPath := secretFile(t, "em-token-1")
	srv := emServer(t, "em-token-1")
	t.Setenv("AIWATT_TEST_WT_PASSWORD", "pw-1")
	src := `
zone: DE
retry_interval: 2m
providers:
  - type: electricitymaps
    base_url: ` + srv.URL + `
    token: {file: ` + tokPath + `}
    max_age: 2h
    timeout: 5s
  - type: ukci
    zone: GB-13
    max_age: 1h
marginal:
  type: watttime
  zone: CAISO_NORTH
  username: aiwatt
  password: {env: AIWATT_TEST_WT_PASSWORD}
market:
  supplier_factor_g_per_kwh: 120
  supplier_source: "Supplier X 2024 disclosure"
  covered_share: 0.4
  covered_source: "GOs 2025"
`
	c, err := decodeStrict(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetryInterval != 2*time.Minute || c.Providers[0].MaxAge != 2*time.Hour || c.Providers[0].Token.File != tokPath {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	clock := newClock("2024-03-06T19:20:00Z")
	s, err := c.Build(BuildOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if s.Location.Name() != "chain(electricitymaps,ukci,static)" || s.Marginal.Name() != "watttime" || s.Market == nil || *s.Market.SupplierFactor != 120 {
		t.Fatalf("built %s %v %+v", s.Location.Name(), s.Marginal, s.Market)
	}
	calc, err := s.Calculator()
	if err != nil {
		t.Fatal(err)
	}
	e, err := calc.Emissions(context.Background(), Interval{clock.Now(), clock.Now().Add(time.Minute), 3.6e6})
	if err != nil || e.Location != 216 || !approx(float64(e.Market), 0.6*120) {
		t.Fatalf("%v %+v", err, e)
	}
}

func TestConfigRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"literal token":          "zone: DE\nproviders:\n  - type: electricitymaps\n    token: abc123\n",
		"literal token field":    "zone: DE\nproviders:\n  - type: electricitymaps\n    token: {value: abc123}\n",
		"unknown provider field": "zone: DE\nproviders:\n  - type: static\n    colour: red\n",
		"bad duration":           "zone: DE\nretry_interval: soon\n",
	} {
		if _, err := decodeStrict(t, src); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	for name, src := range map[string]string{
		"no zone":              "providers: [{type: static}]\n",
		"watttime in location": "zone: DE\nproviders:\n  - {type: watttime, username: u, password: {env: X}}\n",
		"marginal not wt":      "zone: DE\nmarginal: {type: static}\n",
		"token both":           "zone: DE\nproviders:\n  - {type: electricitymaps, token: {file: /a, env: B}}\n",
		"token missing":        "zone: DE\nproviders:\n  - {type: electricitymaps}\n",
		"unknown type":         "zone: DE\nproviders:\n  - {type: carbonapi}\n",
		"token on static":      "zone: DE\nproviders:\n  - {type: static, token: {env: X}}\n",
		"bad factor type":      "zone: DE\nproviders:\n  - {type: electricitymaps, token: {env: X}, emission_factor_type: marginal}\n",
		"share out of range":   "zone: DE\nmarket: {covered_share: 2, covered_source: x}\n",
		"negative max age":     "zone: DE\nproviders:\n  - {type: ukci, max_age: -1h}\n",
		"aiwatt without url":   "zone: DE\nproviders:\n  - {type: aiwatt}\n",
		"aiwatt user only":     "zone: DE\nproviders:\n  - {type: aiwatt, base_url: http://x, username: u}\n",
		"aiwatt token":         "zone: DE\nproviders:\n  - {type: aiwatt, base_url: http://x, token: {env: X}}\n",
		"user on ukci":         "zone: DE\nproviders:\n  - {type: ukci, username: u, password: {env: X}}\n",
	} {
		c, err := decodeStrict(t, src)
		if err != nil {
			t.Errorf("%s: decode: %v", name, err)
			continue
		}
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	// Static only is the no-key default.
	c, _ := decodeStrict(t, "zone: aws:eu-west-1\n")
	s, err := c.Build(BuildOptions{})
	if err != nil || s.Location.Name() != "chain(static)" || s.Marginal != nil || s.Market != nil {
		t.Fatalf("%v %+v", err, s)
	}
}

func TestConfigBuildsRemote(t *testing.T) {
	c, err := decodeStrict(t, `
zone: DE
providers:
  - type: aiwatt
    base_url: http://127.0.0.1:28291
    max_age: 2h
    username: agent
    password: {env: AIWATT_TEST_REMOTE_PW}
marginal:
  type: aiwatt
  base_url: http://127.0.0.1:28291
  zone: CAISO_NORTH
`)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Build(BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Location.Name() != "chain(aiwatt,static)" {
		t.Fatalf("chain %s", s.Location.Name())
	}
	r, ok := s.Marginal.(*Remote)
	if !ok || r.Basis() != BasisMarginal {
		t.Fatalf("marginal %#v", s.Marginal)
	}
}
