package rapl

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoData means that no powercap zones exist under the sysfs root: RAPL is absent, which is not
// a failure. Test for it with errors.Is.
var ErrNoData = errors.New("rapl: no powercap zones found")

// Zone kinds, used as the value of the zone label.
const (
	// ZonePackage is a whole CPU package (socket or die).
	ZonePackage = "package"
	// ZoneCore is the cores of one package (PP0).
	ZoneCore = "core"
	// ZoneUncore is the uncore of one package, usually the integrated GPU (PP1).
	ZoneUncore = "uncore"
	// ZoneDRAM is the memory attached to one package.
	ZoneDRAM = "dram"
	// ZonePsys is the whole platform (SoC and more); it belongs to no socket.
	ZonePsys = "psys"
)

// Directory prefixes of the powercap control types this package reads.
const (
	stdPrefix  = "intel-rapl:"
	mmioPrefix = "intel-rapl-mmio:"
)

// Zone is one RAPL power zone.
type Zone struct {
	// Socket is the socket (package or die) id from the directory name intel-rapl:<s>[:<n>],
	// converted from the kernel's hex to decimal ("a" becomes "10"); "" for psys, which is
	// platform-wide.
	Socket string
	// Name is the zone kind, one of the Zone* constants, or the raw name with a trailing "-N"
	// removed for kinds this package does not know.
	Name string
	// Path is the zone directory.
	Path string
	// ID is the zone's stable identity across re-discoveries and reloads,
	// "<socket>/<kind>" (e.g. "0/package", "/psys").
	ID string
	// MaxEnergyRangeUJ is the largest value energy_uj reaches before it wraps to 0.
	MaxEnergyRangeUJ uint64
	// MMIO is true for a zone of the intel-rapl-mmio control type.
	MMIO bool
	// Err is why the zone cannot be read at all (its name or max_energy_range_uj is
	// unreadable); nil for a usable zone. Such a zone fails alone: every sample counts it
	// as read_error until a re-discovery finds it whole.
	Err error
}

// discover lists the RAPL zones under sysfsRoot, de-duplicated and sorted. A zone whose
// max_energy_range_uj (or name) cannot be read is still listed, with Err set: it fails alone,
// never the other zones.
func discover(sysfsRoot string) ([]Zone, error) {
	if _, err := os.Stat(sysfsRoot); err != nil {
		return nil, fmt.Errorf("rapl: sysfs root: %w", err)
	}
	powercap := filepath.Join(sysfsRoot, "class", "powercap")
	entries, err := os.ReadDir(powercap)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoData, powercap)
	case err != nil:
		return nil, fmt.Errorf("rapl: list %s: %w", powercap, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return discoverNames(powercap, names)
}

// discoverNames builds the zones from the entry names of the powercap directory. Other
// powercap control types (dtpm, ...) are ignored.
func discoverNames(powercap string, names []string) ([]Zone, error) {
	type candidate struct {
		Zone
		socketNum int // -1 for psys
	}
	var std, mmio []candidate
	for _, base := range names {
		var rest string
		var isMMIO bool
		switch {
		case strings.HasPrefix(base, stdPrefix):
			rest = base[len(stdPrefix):]
		case strings.HasPrefix(base, mmioPrefix):
			rest, isMMIO = base[len(mmioPrefix):], true
		default:
			continue // another powercap control type (dtpm, ...)
		}
		sock, _, _ := strings.Cut(rest, ":")
		n, err := strconv.ParseUint(sock, 16, 31)
		if err != nil {
			continue // not a zone directory the kernel would create
		}
		dir := filepath.Join(powercap, base)
		c := candidate{Zone: Zone{Socket: strconv.FormatUint(n, 10), Path: dir, MMIO: isMMIO}, socketNum: int(n)}
		name, err := os.ReadFile(filepath.Join(dir, "name"))
		if err != nil {
			// Without its name a zone cannot be labelled: it fails alone, named by its directory.
			c.Name, c.Err = base, fmt.Errorf("rapl: zone %s: %w", dir, err)
		} else {
			c.Name = zoneKind(strings.TrimSpace(string(name)))
			if r, err := readUint(filepath.Join(dir, "max_energy_range_uj")); err != nil {
				c.Err = fmt.Errorf("rapl: zone %s: %w", dir, err)
			} else {
				c.MaxEnergyRangeUJ = r
			}
		}
		if c.Name == ZonePsys {
			c.Socket, c.socketNum = "", -1
		}
		if isMMIO {
			mmio = append(mmio, c)
		} else {
			std = append(std, c)
		}
	}

	type key struct{ socket, name string }
	seen := make(map[key]bool)
	var kept []candidate
	for _, group := range [][]candidate{std, mmio} {
		// Standard zones first, so an mmio zone survives only as the sole source of its
		// (socket, kind); within each group the first path wins.
		slices.SortFunc(group, func(a, b candidate) int { return strings.Compare(a.Path, b.Path) })
		for _, c := range group {
			k := key{c.Socket, c.Name}
			if seen[k] {
				continue
			}
			seen[k] = true
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%w: %s holds no RAPL zone", ErrNoData, powercap)
	}

	// Sort by socket number (psys, which has no socket, last), then kind, then path.
	slices.SortFunc(kept, func(a, b candidate) int {
		sa, sb := a.socketNum, b.socketNum
		if (sa < 0) != (sb < 0) {
			return cmp.Compare(sb, sa) // the one without a socket goes last
		}
		return cmp.Or(cmp.Compare(sa, sb), strings.Compare(a.Name, b.Name), strings.Compare(a.Path, b.Path))
	})
	zones := make([]Zone, len(kept))
	for i, c := range kept {
		zones[i] = c.Zone
		zones[i].ID = c.Socket + "/" + c.Name
	}
	return zones, nil
}

// readUint reads a file holding one decimal number.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// isZoneDir reports whether a powercap entry name is a RAPL zone directory.
func isZoneDir(name string) bool {
	return strings.HasPrefix(name, stdPrefix) || strings.HasPrefix(name, mmioPrefix)
}

// zoneKind maps the content of a zone's name file (already trimmed) to its kind: "package-0",
// "package-0-die-1" and "package" all become "package"; any trailing "-N" is removed.
func zoneKind(name string) string {
	if rest, ok := strings.CutPrefix(name, ZonePackage+"-"); ok && (isDigits(rest) || isDieSuffix(rest)) {
		return ZonePackage
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
		return name[:i]
	}
	return name
}

// isDieSuffix reports whether s has the form "<n>-die-<m>" (multi-die packages).
func isDieSuffix(s string) bool {
	pkg, die, ok := strings.Cut(s, "-die-")
	return ok && isDigits(pkg) && isDigits(die)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
