package dcgm

import (
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// DCGM "blank" sentinels: values at or above these mean not found, not
// supported or no permission, and older exporters print them verbatim
// (e.g. 9223372036854775794 in the dcgm-exporter README).
const (
	blankInt64 = 0x1p63                  // DCGM_FT_INT64_BLANK 0x7ffffffffffffff0, as a float
	blankFP64  = 140737488355328.0       // DCGM_FT_FP64_BLANK (2^47)
	blankInt32 = float64(0x7ffffff0)     // DCGM_FT_INT32_BLANK
	maxUint64F = float64(math.MaxUint64) // guard for the energy conversion
)

type metricKind int

const (
	kindOther metricKind = iota
	kindEnergy
	kindPower
	kindMgmtLimit
	kindEnforcedLimit
	kindUtil
)

// kindOf maps a metric name to the fields this package reads. Names are
// matched case-insensitively with or without the DCGM_FI_DEV_ prefix, which
// covers the default names, the lowercase "old namespace" and the 1.x
// exporter names (dcgm_power_usage, dcgm_gpu_utilization).
func kindOf(name string) metricKind {
	switch name { // fast path for the default names
	case "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":
		return kindEnergy
	case "DCGM_FI_DEV_POWER_USAGE":
		return kindPower
	case "DCGM_FI_DEV_POWER_MGMT_LIMIT":
		return kindMgmtLimit
	case "DCGM_FI_DEV_ENFORCED_LIMIT":
		return kindEnforcedLimit
	case "DCGM_FI_DEV_GPU_UTIL":
		return kindUtil
	}
	n := strings.ToLower(name)
	switch {
	case strings.HasPrefix(n, "dcgm_fi_dev_"):
		n = n[len("dcgm_fi_dev_"):]
	case strings.HasPrefix(n, "dcgm_fi_"):
		return kindOther
	case strings.HasPrefix(n, "dcgm_"):
		n = n[len("dcgm_"):]
	default:
		return kindOther
	}
	switch n {
	case "total_energy_consumption":
		return kindEnergy
	case "power_usage":
		return kindPower
	case "power_mgmt_limit":
		return kindMgmtLimit
	case "enforced_limit":
		return kindEnforcedLimit
	case "gpu_util", "gpu_utilization":
		return kindUtil
	}
	return kindOther
}

// gpuRows is everything the rows of one GPU UUID said in one scrape.
type gpuRows struct {
	uuid, model, driver, hostname string
	index                         int

	energy       uint64 // mJ, max over rows
	hasEnergy    bool
	power        float64 // W, max over rows
	hasPower     bool
	mgmtLimit    float64
	hasMgmtLimit bool
	enforced     float64
	hasEnforced  bool
	util         float64
	hasUtil      bool

	mig  []MIGInstance
	pods []PodRef

	invalid uint64 // energy, power, limit or utilisation values that cannot be one
	readOK  bool   // set by the backend
}

// rowLabels are the labels of one row this package uses.
type rowLabels struct {
	uuid, gpu, device, model, devName, driver, hostname string
	giID, giProfile                                     string
	pod, namespace, container                           string
}

// parse reads the labels of a row. For the pod labels, the exported_ form
// (added by Prometheus relabelling) wins over the plain form, which wins
// over the 1.x form (pod_name, pod_namespace, container_name).
func (l *rowLabels) parse(lps []*dto.LabelPair) {
	var pod, ns, ctr [3]string // exported_, plain, old
	for _, lp := range lps {
		v := lp.GetValue()
		switch lp.GetName() {
		case "UUID", "uuid":
			l.uuid = v
		case "gpu":
			l.gpu = v
		case "device":
			l.device = v
		case "modelName":
			l.model = v
		case "DCGM_FI_DEV_NAME":
			l.devName = v
		case "DCGM_FI_DRIVER_VERSION":
			l.driver = v
		case "Hostname", "hostname":
			l.hostname = v
		case "GPU_I_ID":
			l.giID = v
		case "GPU_I_PROFILE":
			l.giProfile = v
		case "exported_pod":
			pod[0] = v
		case "pod":
			pod[1] = v
		case "pod_name":
			pod[2] = v
		case "exported_namespace":
			ns[0] = v
		case "namespace":
			ns[1] = v
		case "pod_namespace":
			ns[2] = v
		case "exported_container":
			ctr[0] = v
		case "container":
			ctr[1] = v
		case "container_name":
			ctr[2] = v
		}
	}
	for i := range pod {
		if pod[i] != "" {
			l.pod, l.namespace, l.container = pod[i], ns[i], ctr[i]
			break
		}
	}
}

// index is the GPU index from the gpu label, else from device="nvidiaN".
func (l *rowLabels) index() int {
	if n, err := strconv.Atoi(l.gpu); err == nil && n >= 0 {
		return n
	}
	if s, ok := strings.CutPrefix(l.device, "nvidia"); ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// metricValue is the sample value of a counter, gauge or untyped row.
func metricValue(m *dto.Metric) (float64, bool) {
	var v float64
	switch {
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	default:
		return 0, false
	}
	return v, true
}

// maxPlausible is above every DCGM blank sentinel (about 9.2e18 as a float)
// and below what no GPU counter or gauge can reach: a value beyond it is
// invalid, not blank.
const maxPlausible = 1e19

// invalidValue reports a value that cannot be energy, power or utilisation.
func invalidValue(v float64) bool {
	return math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxPlausible
}

// collectGPUs groups the rows of a scrape by GPU UUID. Rows without a UUID
// (NVSwitch, CPU, exporter self-metrics) are ignored. Values repeated on
// each MIG instance row are taken once per GPU, the largest winning, so a
// GPU's energy is never multiplied by its number of instances.
func collectGPUs(mfs map[string]*dto.MetricFamily) map[string]*gpuRows {
	rows := make(map[string]*gpuRows)
	for name, mf := range mfs {
		kind := kindOf(name)
		for _, m := range mf.GetMetric() {
			var l rowLabels
			l.parse(m.GetLabel())
			if l.uuid == "" {
				continue
			}
			g := rows[l.uuid]
			if g == nil {
				g = &gpuRows{uuid: l.uuid, index: -1}
				rows[l.uuid] = g
			}
			g.addLabels(&l)
			if kind == kindOther {
				continue
			}
			v, ok := metricValue(m)
			if !ok {
				continue
			}
			if invalidValue(v) {
				g.invalid++
				continue
			}
			switch kind {
			case kindEnergy:
				if v >= blankInt64 || v >= maxUint64F {
					continue
				}
				if e := uint64(v); !g.hasEnergy || e > g.energy {
					g.energy, g.hasEnergy = e, true
				}
			case kindPower:
				if v < blankFP64 && (!g.hasPower || v > g.power) {
					g.power, g.hasPower = v, true
				}
			case kindMgmtLimit:
				if v < blankFP64 && (!g.hasMgmtLimit || v > g.mgmtLimit) {
					g.mgmtLimit, g.hasMgmtLimit = v, true
				}
			case kindEnforcedLimit:
				if v < blankFP64 && (!g.hasEnforced || v > g.enforced) {
					g.enforced, g.hasEnforced = v, true
				}
			case kindUtil:
				if v < blankInt32 && (!g.hasUtil || v > g.util) {
					g.util, g.hasUtil = v, true
				}
			}
		}
	}
	return rows
}

// addLabels merges the identity, MIG and pod labels of one row.
func (g *gpuRows) addLabels(l *rowLabels) {
	if g.index < 0 {
		g.index = l.index()
	}
	if g.model == "" {
		g.model = firstNonEmpty(l.model, l.devName)
	}
	if g.driver == "" {
		g.driver = l.driver
	}
	if g.hostname == "" {
		g.hostname = l.hostname
	}
	if l.giID != "" {
		if id, err := strconv.Atoi(l.giID); err == nil {
			found := false
			for i := range g.mig {
				if g.mig[i].GPUInstanceID == id {
					found = true
					if g.mig[i].Profile == "" {
						g.mig[i].Profile = l.giProfile
					}
					break
				}
			}
			if !found {
				g.mig = append(g.mig, MIGInstance{GPUInstanceID: id, ComputeInstanceID: -1, Profile: l.giProfile})
			}
		}
	}
	if l.pod != "" {
		p := PodRef{Namespace: l.namespace, Pod: l.pod, Container: l.container}
		for _, q := range g.pods {
			if q == p {
				return
			}
		}
		g.pods = append(g.pods, p)
	}
}

// migInstances returns the MIG instances sorted by GPU instance id.
func (g *gpuRows) migInstances() []MIGInstance {
	sort.Slice(g.mig, func(i, j int) bool { return g.mig[i].GPUInstanceID < g.mig[j].GPUInstanceID })
	return g.mig
}

// podList returns the pods sorted by namespace, pod, container.
func (g *gpuRows) podList() []PodRef {
	sort.Slice(g.pods, func(i, j int) bool {
		a, b := g.pods[i], g.pods[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Container < b.Container
	})
	return g.pods
}
