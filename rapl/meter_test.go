package rapl

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// t0 is the fake clock's start.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// testMeter is a Meter whose test keeps the totals the agent keeps: the sum
// of every sample's deltas, per zone directory. The meter itself hands out
// deltas only.
type testMeter struct {
	*Meter
	totals map[string]uint64
}

func newMeter(t *testing.T, root string, opts Options) *testMeter {
	t.Helper()
	m, err := NewMeter(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testMeter{Meter: m, totals: map[string]uint64{}}
}

// Sample samples the meter and adds its deltas to the test's totals.
func (m *testMeter) Sample(now time.Time) Sample {
	s := m.Meter.Sample(now)
	for _, z := range s.Zones {
		m.totals[filepath.Base(z.Path)] += uint64(z.Delta)
	}
	return s
}

func wantErrors(t *testing.T, s Sample, want map[string]uint64) {
	t.Helper()
	if len(s.Errors) == 0 && len(want) == 0 {
		return
	}
	if !maps.Equal(s.Errors, want) {
		t.Fatalf("Errors = %v, want %v", s.Errors, want)
	}
}

// wantZone checks a zone of s and the total of its deltas so far.
func (m *testMeter) wantZone(t *testing.T, s Sample, dir string, uj uint64, watts float64, ok bool) {
	t.Helper()
	z := zoneByDir(t, s, dir)
	if got := m.totals[dir]; got != uj || math.Abs(z.Watts-watts) > 1e-9 || z.OK != ok {
		t.Fatalf("%s: deltas add up to %d µJ, Watts=%v OK=%v, want %d %v %v (err %v)", dir, got, z.Watts, z.OK, uj, watts, ok, z.Err)
	}
	if ok != (z.Err == nil) {
		t.Fatalf("%s: OK=%v but Err=%v", dir, z.OK, z.Err)
	}
}

func TestMeterAccumulates(t *testing.T) {
	root := copyTree(t, "intel-2socket")
	m := newMeter(t, root, Options{})

	s := m.Sample(at(0))
	wantErrors(t, s, nil)
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	for _, z := range s.Zones {
		if !z.OK || z.Delta != 0 || z.Watts != 0 {
			t.Fatalf("first sample must be a baseline: %+v", z)
		}
	}

	// Each zone draws a different, known power for 5 s, twice.
	watts := map[string]uint64{
		"intel-rapl:0": 180, "intel-rapl:0:0": 120, "intel-rapl:0:1": 3, "intel-rapl:0:2": 25,
		"intel-rapl:1": 150, "intel-rapl:1:0": 95, "intel-rapl:1:1": 2, "intel-rapl:1:2": 21,
		"intel-rapl:2": 410,
	}
	for step := 1; step <= 2; step++ {
		for dir, w := range watts {
			setEnergy(t, root, dir, readEnergy(t, root, dir)+w*5_000_000+uint64(step))
		}
		s = m.Sample(at(5 * float64(step)))
		wantErrors(t, s, nil)
		for dir, w := range watts {
			// +step µJ per step on top, so the total is exact only if every microjoule counts.
			uj := uint64(step)*w*5_000_000 + uint64(step*(step+1)/2)
			m.wantZone(t, s, dir, uj, float64(w*5_000_000+uint64(step))/5e6, true)
		}
	}
}

func TestMeterWrapAtRealRange(t *testing.T) {
	// dram on intel-rapl:0:2 has max_energy_range_uj 65712999613; the counter runs 0..max.
	root := copyTree(t, "intel-2socket")
	const top = 65712999613
	setEnergy(t, root, "intel-rapl:0:2", top-4_000_000)
	m := newMeter(t, root, Options{})
	m.Sample(at(0))
	setEnergy(t, root, "intel-rapl:0:2", top) // +4 J
	m.wantZone(t, m.Sample(at(1)), "intel-rapl:0:2", 4_000_000, 4, true)
	setEnergy(t, root, "intel-rapl:0:2", 0) // max -> 0 is one microjoule
	m.wantZone(t, m.Sample(at(2)), "intel-rapl:0:2", 4_000_001, 1e-6, true)
	setEnergy(t, root, "intel-rapl:0:2", top-1) // a jump of almost the whole range in 1 s: implausible
	s := m.Sample(at(3))
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: 1})
	m.wantZone(t, s, "intel-rapl:0:2", 4_000_001, 1e-6, true)
	setEnergy(t, root, "intel-rapl:0:2", 2_999_998) // wraps: 1 + 1 + 2999998 µJ
	m.wantZone(t, m.Sample(at(4)), "intel-rapl:0:2", 7_000_001, 3, true)
}

func TestMeterImplausible(t *testing.T) {
	const dir = "intel-rapl:0"
	root := copyTree(t, "intel-2socket")
	m := newMeter(t, root, Options{})
	v := readEnergy(t, root, dir)
	m.Sample(at(0))

	// 3000 J in 1 s: 3000 W is above the 2000 W default ceiling.
	v += 3_000_000_000
	setEnergy(t, root, dir, v)
	s := m.Sample(at(1))
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: 1})
	m.wantZone(t, s, dir, 0, 0, true)

	// Recovery: the next delta counts from the re-baselined value.
	v += 100_000_000
	setEnergy(t, root, dir, v)
	s = m.Sample(at(2))
	wantErrors(t, s, nil)
	m.wantZone(t, s, dir, 100_000_000, 100, true)

	// A backwards glitch reads as a near-full wrap (262 kJ in 1 s): rejected, counted.
	v -= 1000
	setEnergy(t, root, dir, v)
	s = m.Sample(at(3))
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: 1})
	m.wantZone(t, s, dir, 100_000_000, 100, true)

	// Recovery after the glitch, from the glitched value.
	v += 50_000_000
	setEnergy(t, root, dir, v)
	s = m.Sample(at(4))
	wantErrors(t, s, nil)
	m.wantZone(t, s, dir, 150_000_000, 50, true)

	// Exactly at the ceiling is plausible: 2000 J in 1 s.
	v += 2_000_000_000
	setEnergy(t, root, dir, v)
	s = m.Sample(at(5))
	wantErrors(t, s, nil)
	m.wantZone(t, s, dir, 2_150_000_000, 2000, true)
}

func TestMeterCustomCeiling(t *testing.T) {
	const dir = "intel-rapl:0"
	for _, tc := range []struct {
		ceiling float64
		accept  bool
	}{{0, false}, {2999, false}, {3000, true}, {5000, true}} {
		t.Run(fmt.Sprint(tc.ceiling), func(t *testing.T) {
			root := copyTree(t, "intel-2socket")
			m := newMeter(t, root, Options{MaxPowerWatts: tc.ceiling})
			m.Sample(at(0))
			setEnergy(t, root, dir, readEnergy(t, root, dir)+6_000_000_000) // 3000 W over 2 s
			s := m.Sample(at(2))
			if tc.accept {
				wantErrors(t, s, nil)
				m.wantZone(t, s, dir, 6_000_000_000, 3000, true)
			} else {
				wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: 1})
				m.wantZone(t, s, dir, 0, 0, true)
			}
		})
	}
}

func TestMeterNonPositiveElapsed(t *testing.T) {
	root := copyTree(t, "amd-2socket")
	m := newMeter(t, root, Options{})
	n := uint64(len(m.Zones()))
	m.Sample(at(10))

	setEnergy(t, root, "intel-rapl:0", readEnergy(t, root, "intel-rapl:0")+1_000_000)
	s := m.Sample(at(10)) // no time passed: nothing can be plausible
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: n})
	m.wantZone(t, s, "intel-rapl:0", 0, 0, true)

	s = m.Sample(at(9)) // the clock went backwards
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: n})

	setEnergy(t, root, "intel-rapl:0", readEnergy(t, root, "intel-rapl:0")+7_000_000)
	s = m.Sample(at(11)) // 7 J over the 2 s since the last re-baseline
	wantErrors(t, s, nil)
	m.wantZone(t, s, "intel-rapl:0", 7_000_000, 3.5, true)
}

func TestMeterReadingAboveRange(t *testing.T) {
	root := t.TempDir()
	writeZone(t, root, "intel-rapl:0", "package-0", 900, 1000)
	m := newMeter(t, root, Options{})
	m.Sample(at(0))
	setEnergy(t, root, "intel-rapl:0", 1500) // above max_energy_range_uj but forward: counted
	m.wantZone(t, m.Sample(at(1)), "intel-rapl:0", 600, 600e-6, true)
	setEnergy(t, root, "intel-rapl:0", 100) // the wrap from 1500 cannot be computed
	s := m.Sample(at(2))
	wantErrors(t, s, map[string]uint64{ReasonImplausibleDelta: 1})
	m.wantZone(t, s, "intel-rapl:0", 600, 600e-6, true)
	setEnergy(t, root, "intel-rapl:0", 150)
	m.wantZone(t, m.Sample(at(3)), "intel-rapl:0", 650, 50e-6, true)
}

// failOn makes m's reads of the energy_uj in zone directory dir fail with err while *on is true.
func failOn(m *Meter, dir string, on *bool, err error) {
	next := m.readFile
	m.readFile = func(path string, buf []byte) ([]byte, error) {
		if *on && (dir == "*" || filepath.Base(filepath.Dir(path)) == dir) {
			return nil, err
		}
		return next(path, buf)
	}
}

func TestMeterZoneErrorsKeepTotals(t *testing.T) {
	const dir = "intel-rapl:1"
	for _, tc := range []struct {
		name   string
		err    error  // injected read error, or
		raw    string // energy_uj content
		reason string
	}{
		{"eio", syscall.EIO, "", ReasonReadError},
		{"permission", syscall.EACCES, "", ReasonPermissionDenied},
		{"eperm", &fs.PathError{Op: "open", Path: "x", Err: fs.ErrPermission}, "", ReasonPermissionDenied},
		{"missing file", nil, "<remove>", ReasonReadError},
		{"garbage", nil, "12ab34\n", ReasonParseError},
		{"empty", nil, "", ReasonParseError},
		{"negative", nil, "-5\n", ReasonParseError},
		{"too big", nil, "18446744073709551616\n", ReasonParseError},
		{"too long", nil, strings.Repeat("1", 100) + "\n", ReasonParseError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, "intel-2socket")
			m := newMeter(t, root, Options{})
			var failing bool
			failOn(m.Meter, dir, &failing, tc.err)
			v := readEnergy(t, root, dir)
			m.Sample(at(0))

			v += 100_000_000
			setEnergy(t, root, dir, v)
			m.wantZone(t, m.Sample(at(1)), dir, 100_000_000, 100, true)

			// The zone fails while its counter advances by 100 J.
			v += 100_000_000
			switch {
			case tc.err != nil:
				setEnergy(t, root, dir, v)
				failing = true
			case tc.raw == "<remove>":
				if err := os.Remove(filepath.Join(powercapDir(root), dir, "energy_uj")); err != nil {
					t.Fatal(err)
				}
			default:
				writeRaw(t, root, dir, tc.raw)
			}
			s := m.Sample(at(2))
			if s.Err != nil {
				t.Fatalf("Sample.Err = %v with other zones readable", s.Err)
			}
			wantErrors(t, s, map[string]uint64{tc.reason: 1})
			m.wantZone(t, s, dir, 100_000_000, 100, false)
			z := zoneByDir(t, s, dir)
			if !strings.Contains(z.Err.Error(), filepath.Join(powercapDir(root), dir, "energy_uj")) {
				t.Errorf("zone error %q does not name the file", z.Err)
			}
			for _, other := range s.Zones {
				if other.Path != z.Path && !other.OK {
					t.Errorf("zone %s failed too: %v", other.Path, other.Err)
				}
			}

			// Back: everything since the last good read (200 J over 2 s) is added.
			failing = false
			v += 100_000_000
			setEnergy(t, root, dir, v)
			s = m.Sample(at(3))
			wantErrors(t, s, nil)
			m.wantZone(t, s, dir, 300_000_000, 100, true)
		})
	}
}

func TestMeterFailureBeforeBaseline(t *testing.T) {
	const dir = "intel-rapl:0"
	root := copyTree(t, "intel-2socket")
	m := newMeter(t, root, Options{})
	failing := true
	failOn(m.Meter, dir, &failing, syscall.EIO)
	s := m.Sample(at(0))
	wantErrors(t, s, map[string]uint64{ReasonReadError: 1})
	m.wantZone(t, s, dir, 0, 0, false)
	failing = false
	setEnergy(t, root, dir, readEnergy(t, root, dir)+5_000_000)
	m.wantZone(t, m.Sample(at(1)), dir, 0, 0, true) // the first good read is the baseline
	setEnergy(t, root, dir, readEnergy(t, root, dir)+5_000_000)
	m.wantZone(t, m.Sample(at(2)), dir, 5_000_000, 5, true)
}

func TestMeterAllZonesFail(t *testing.T) {
	root := copyTree(t, "intel-2socket")
	for _, tc := range []struct {
		name   string
		err    error
		reason string
		perm   bool
	}{
		{"permission", syscall.EACCES, ReasonPermissionDenied, true},
		{"permission as PathError", &fs.PathError{Op: "open", Path: "energy_uj", Err: syscall.EPERM}, ReasonPermissionDenied, true},
		{"io", syscall.EIO, ReasonReadError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter(t, root, Options{})
			on := true
			failOn(m.Meter, "*", &on, tc.err)
			s := m.Sample(at(0))
			n := uint64(len(m.Zones()))
			wantErrors(t, s, map[string]uint64{tc.reason: n})
			for _, z := range s.Zones {
				if z.OK || z.Err == nil {
					t.Errorf("zone %s OK", z.Path)
				}
			}
			if s.Err == nil {
				t.Fatal("Sample.Err = nil when no zone could be read")
			}
			if got := errors.Is(s.Err, fs.ErrPermission); got != tc.perm {
				t.Errorf("errors.Is(%v, fs.ErrPermission) = %v", s.Err, got)
			}
			if !strings.Contains(s.Err.Error(), "energy_uj") {
				t.Errorf("Sample.Err %q does not name the file", s.Err)
			}
			hint := []string{"CVE-2020-8694", "readable only by root", "CAP_DAC_READ_SEARCH", "/sys read-only"}
			for _, h := range hint {
				if strings.Contains(s.Err.Error(), h) != tc.perm {
					t.Errorf("Sample.Err %q: mention of %q should be %v", s.Err, h, tc.perm)
				}
			}
		})
	}
}

func TestMeterPermissionRealFile(t *testing.T) {
	root := copyTree(t, "unreadable")
	file := filepath.Join(powercapDir(root), "intel-rapl:0", "energy_uj")
	if err := os.Chmod(file, 0); err != nil {
		t.Fatal(err)
	}
	m := newMeter(t, root, Options{})
	s := m.Sample(at(0))
	if os.Geteuid() != 0 {
		wantErrors(t, s, map[string]uint64{ReasonPermissionDenied: 1})
		if !errors.Is(s.Err, fs.ErrPermission) || !strings.Contains(s.Err.Error(), file) {
			t.Fatalf("Sample.Err = %v, want fs.ErrPermission naming %s", s.Err, file)
		}
		return
	}
	// Root (as in CI) reads a mode-000 file: the read must simply succeed.
	wantErrors(t, s, nil)
	if s.Err != nil || !s.Zones[0].OK {
		t.Fatalf("as root: Sample = %+v", s)
	}
}

func TestMeterZonesIsACopy(t *testing.T) {
	m := newMeter(t, fixtureRoot(t, "procfs"), Options{})
	z := m.Zones()
	z[0].Name = "changed"
	if m.Zones()[0].Name == "changed" {
		t.Fatal("Zones exposes the meter's state")
	}
}

func TestMeterConcurrentUse(t *testing.T) {
	root := copyTree(t, "amd-2socket")
	m := newMeter(t, root, Options{})
	done := make(chan struct{})
	for g := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				s := m.Meter.Sample(at(float64(100*g + i))) // the meter itself; the test's totals are not shared
				if len(s.Zones) != 4 || len(m.Zones()) != 4 {
					t.Errorf("goroutine %d: %d zones", g, len(s.Zones))
					return
				}
			}
		}()
	}
	<-done
	<-done
}

func TestMeterWrapTime(t *testing.T) {
	root := copyTree(t, "intel-2socket")
	m := newMeter(t, root, Options{})
	// dram's 65712999613 µJ is the smallest range: at the default 2000 W
	// ceiling it wraps in 32.856499806 s; the packages' 262 kJ in 131 s.
	if got, want := m.WrapTime(), 32856499*time.Microsecond; got != want {
		t.Fatalf("WrapTime at 2000 W = %s, want %s", got, want)
	}
	if err := m.SetMaxPowerWatts(500); err != nil {
		t.Fatal(err)
	}
	if got, want := m.WrapTime(), 131425999*time.Microsecond; got != want {
		t.Fatalf("WrapTime at 500 W = %s, want %s", got, want)
	}
}
