package agent

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/internal/yamlconf"
	"github.com/inferensys/aiwatt/scrape"
	"github.com/inferensys/aiwatt/workload"
)

// Estimate modes for the CPU power model.
const (
	// EstimateAuto uses the model only while no RAPL zone can be read.
	EstimateAuto = "auto"
	// EstimateAlways runs the model even where RAPL works (both series are exported).
	EstimateAlways = "always"
	// EstimateNever never estimates: without RAPL there is no CPU energy.
	EstimateNever = "never"
)

// Defaults of the configuration, documented in the README.
const (
	DefaultRAPLMaxPowerWatts = 2000.0
	DefaultMinWattsPerCPU    = 0.74
	DefaultMaxWattsPerCPU    = 3.5
)

// Config is the agent's configuration file (--config.file). Every field has a
// default, so an empty or absent file is a valid configuration. Unknown keys
// are refused.
type Config struct {
	// RAPL configures the powercap (RAPL) energy source.
	RAPL RAPLConfig `yaml:"rapl"`
	// CPUModel configures the utilisation-based CPU power model used where
	// RAPL is absent or unreadable.
	CPUModel CPUModelConfig `yaml:"cpu_model"`
	// GPU selects and tunes the GPU energy backend.
	GPU GPUConfig `yaml:"gpu"`
	// Attribution sets the idle policy, retention and cardinality cap.
	Attribution AttributionConfig `yaml:"attribution"`
	// Workloads maps pod labels to project/model_id/workload_type and names
	// processes outside Kubernetes by rules.
	Workloads workload.Rules `yaml:"workloads"`
	// Kubernetes configures the kubelet pod-resources socket.
	Kubernetes KubernetesConfig `yaml:"kubernetes"`
	// Inference lists inference servers to scrape for requests and tokens.
	Inference InferenceConfig `yaml:"inference"`
	// Carbon configures grid carbon intensity for CO2e; absent: no CO2e.
	Carbon *carbon.Config `yaml:"carbon"`
}

// AttributionConfig configures how energy is split between workloads.
type AttributionConfig struct {
	// Idle is node (default: idle energy of shared devices stays node idle)
	// or allocation (spread by CPU requests and allocated GPUs).
	Idle string `yaml:"idle"`
	// Retention keeps a finished workload's series this long (default 5m).
	Retention time.Duration `yaml:"retention"`
	// MaxWorkloads caps live workload series; the excess folds into "other" (default 2000).
	MaxWorkloads int `yaml:"max_workloads"`
}

// KubernetesConfig configures the Kubernetes inputs. Pod metadata is
// watched when the agent knows its node (--kubernetes.node-name, default
// $NODE_NAME).
type KubernetesConfig struct {
	// PodResourcesSocket is the kubelet pod-resources socket.
	PodResourcesSocket string `yaml:"pod_resources_socket"`
}

// InferenceConfig configures the inference-server scrapes.
type InferenceConfig struct {
	// Targets are static inference servers.
	Targets []scrape.TargetConfig `yaml:"targets"`
	// PodAnnotations scrapes pods on this node annotated aiwatt.io/scrape: "true" (default true).
	PodAnnotations *bool `yaml:"pod_annotations"`
	// Timeout bounds one scrape (default 5s, and never more than 9/10 of the tick's deadline, which is 4/5 of the sampling interval).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultPodResourcesSocket is where the kubelet serves pod-resources.
const DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// GPUConfig configures the GPU source.
type GPUConfig struct {
	// Backend is auto (default: NVML, else a dcgm-exporter), nvml, dcgm-exporter or none.
	Backend string `yaml:"backend"`
	// ExporterURL is the dcgm-exporter metrics URL; the --dcgm.exporter-url flag overrides it.
	ExporterURL string `yaml:"exporter_url"`
	// ExporterTimeout bounds one dcgm-exporter scrape (default 5s).
	ExporterTimeout time.Duration `yaml:"exporter_timeout"`
	// ExporterMinRefresh is the shortest time between two scrapes of the
	// dcgm-exporter (default 0: every sample; it refreshes every 30s itself).
	ExporterMinRefresh time.Duration `yaml:"exporter_min_refresh"`
}

// RAPLConfig configures the RAPL source.
type RAPLConfig struct {
	// Enabled turns the RAPL source on (default true).
	Enabled *bool `yaml:"enabled"`
	// MaxPowerWatts is the plausibility ceiling per zone: a counter jump that
	// implies more power than this is rejected and counted (default 2000).
	MaxPowerWatts float64 `yaml:"max_power_watts"`
}

// CPUModelConfig configures the CPU power model: W = CPUs × (min + u × (max − min)).
type CPUModelConfig struct {
	// Estimate is auto (default), always or never.
	Estimate string `yaml:"estimate"`
	// MinWattsPerCPU is the power of one idle vCPU (default 0.74).
	MinWattsPerCPU *float64 `yaml:"min_watts_per_cpu"`
	// MaxWattsPerCPU is the power of one fully busy vCPU (default 3.5).
	MaxWattsPerCPU *float64 `yaml:"max_watts_per_cpu"`
	// CPUs overrides the number of vCPUs counted from /proc/stat (0 = count).
	CPUs int `yaml:"cpus"`
}

// RAPLEnabled reports whether the RAPL source is on.
func (c *Config) RAPLEnabled() bool { return c.RAPL.Enabled == nil || *c.RAPL.Enabled }

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.RAPL.MaxPowerWatts == 0 {
		c.RAPL.MaxPowerWatts = DefaultRAPLMaxPowerWatts
	}
	if c.GPU.Backend == "" {
		c.GPU.Backend = dcgm.BackendAuto
	}
	if c.GPU.ExporterTimeout == 0 {
		c.GPU.ExporterTimeout = dcgm.DefaultExporterTimeout
	}
	if c.Attribution.Idle == "" {
		c.Attribution.Idle = string(attribution.IdleNode)
	}
	if c.Attribution.Retention == 0 {
		c.Attribution.Retention = attribution.DefaultRetention
	}
	if c.Attribution.MaxWorkloads == 0 {
		c.Attribution.MaxWorkloads = attribution.DefaultMaxKeys
	}
	if c.Kubernetes.PodResourcesSocket == "" {
		c.Kubernetes.PodResourcesSocket = DefaultPodResourcesSocket
	}
	if c.Inference.Timeout == 0 {
		c.Inference.Timeout = 5 * time.Second
	}
	if c.CPUModel.Estimate == "" {
		c.CPUModel.Estimate = EstimateAuto
	}
	if c.CPUModel.MinWattsPerCPU == nil {
		v := DefaultMinWattsPerCPU
		c.CPUModel.MinWattsPerCPU = &v
	}
	if c.CPUModel.MaxWattsPerCPU == nil {
		v := DefaultMaxWattsPerCPU
		c.CPUModel.MaxWattsPerCPU = &v
	}
}

// fieldError is a validation failure of one key, located by its YAML path.
type fieldError struct {
	path []string
	msg  string
	at   string // the YAML path whose line is reported, when deeper than path
}

func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(msg string, path ...string) { errs = append(errs, fieldError{path: path, msg: msg}) }
	if c.RAPL.MaxPowerWatts < 0 {
		add(fmt.Sprintf("must be positive, got %g", c.RAPL.MaxPowerWatts), "rapl", "max_power_watts")
	}
	switch c.CPUModel.Estimate {
	case EstimateAuto, EstimateAlways, EstimateNever:
	default:
		add(fmt.Sprintf("must be one of auto, always, never; got %q", c.CPUModel.Estimate), "cpu_model", "estimate")
	}
	minW, maxW := *c.CPUModel.MinWattsPerCPU, *c.CPUModel.MaxWattsPerCPU
	if minW <= 0 {
		add(fmt.Sprintf("must be positive, got %g", minW), "cpu_model", "min_watts_per_cpu")
	}
	if maxW < minW {
		add(fmt.Sprintf("must be at least min_watts_per_cpu (%g), got %g", minW, maxW), "cpu_model", "max_watts_per_cpu")
	}
	switch c.GPU.Backend {
	case dcgm.BackendAuto, dcgm.BackendNVML, dcgm.BackendDCGMExporter, dcgm.BackendNone:
	default:
		add(fmt.Sprintf("must be one of auto, nvml, dcgm-exporter, none; got %q", c.GPU.Backend), "gpu", "backend")
	}
	if c.GPU.ExporterURL != "" {
		if u, err := url.Parse(c.GPU.ExporterURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(fmt.Sprintf("must be an http(s) URL, got %q", c.GPU.ExporterURL), "gpu", "exporter_url")
		}
	}
	if c.GPU.ExporterTimeout < 0 {
		add(fmt.Sprintf("must be positive, got %s", c.GPU.ExporterTimeout), "gpu", "exporter_timeout")
	}
	if c.GPU.ExporterMinRefresh < 0 {
		add(fmt.Sprintf("must not be negative, got %s", c.GPU.ExporterMinRefresh), "gpu", "exporter_min_refresh")
	}
	if err := (attribution.Policy{Idle: attribution.IdlePolicy(c.Attribution.Idle)}).Validate(); err != nil {
		add(fmt.Sprintf("must be node or allocation, got %q", c.Attribution.Idle), "attribution", "idle")
	}
	if c.Attribution.Retention < 0 {
		add("must be positive", "attribution", "retention")
	}
	if c.Attribution.MaxWorkloads < 0 {
		add("must be positive", "attribution", "max_workloads")
	}
	if err := c.Workloads.Validate(); err != nil {
		var fe *workload.FieldError
		for _, e := range unjoin(err) {
			if errors.As(e, &fe) {
				add(fe.Msg, append([]string{"workloads"}, fe.Path...)...)
			} else {
				add(e.Error(), "workloads")
			}
		}
	}
	for i, t := range c.Inference.Targets {
		if err := t.Validate(); err != nil {
			target := fmt.Sprintf("targets[%d]", i)
			for _, e := range unjoin(err) {
				// The line is the key's own when the message names one.
				at := "inference." + target
				if m := targetFieldRE.FindStringSubmatch(e.Error()); m != nil {
					at += "." + m[1]
				}
				errs = append(errs, fieldError{path: []string{"inference", target}, msg: e.Error(), at: at})
			}
		}
		if r := t.Workload.Rule; r != "" && !c.Workloads.HasRule(r) {
			add(fmt.Sprintf("no workload rule is named %q", r), "inference", fmt.Sprintf("targets[%d]", i), "workload", "rule")
		}
	}
	if c.Inference.Timeout < 0 {
		add("must be positive", "inference", "timeout")
	}
	if c.Carbon != nil {
		if err := c.Carbon.Validate(); err != nil {
			// The message names the key; the line is the key's own.
			errs = append(errs, fieldError{path: []string{"carbon"}, msg: err.Error(), at: "carbon." + carbon.ErrorField(err)})
		}
	}
	if c.CPUModel.CPUs < 0 {
		add(fmt.Sprintf("must not be negative, got %d", c.CPUModel.CPUs), "cpu_model", "cpus")
	}
	return errs
}

// targetFieldRE reads the key a scrape.TargetConfig error is about:
// `scrape target "URL": timeout 2m is not ...`.
var targetFieldRE = regexp.MustCompile(`^scrape target "(?:[^"\\]|\\.)*": (url|server|timeout|body_limit|model|workload)\b`)

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// LoadConfigFile reads and validates a configuration file. An error names the
// file, the line and the reason, as "FILE:LINE: reason".
func LoadConfigFile(path string) (*Config, error) {
	data, err := yamlconf.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig parses and validates configuration bytes; name is used in
// errors. Values from the file are never echoed in errors (a mistyped secret
// must not reach a log).
func ParseConfig(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	root, err := yamlconf.Decode(name, data, cfg)
	if err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if errs := cfg.validate(); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			path, at := strings.Join(e.path, "."), e.at
			if at == "" {
				at = path
			}
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: %s", name, yamlconf.Line(root, at), path, e.msg))
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return cfg, nil
}
