package scrape

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxTimeout is the largest per-target timeout accepted in configuration.
const MaxTimeout = 5 * time.Minute

// TargetConfig is one static scrape target as written in the agent's YAML
// configuration (under whatever key the agent chooses), for example:
//
//	targets:
//	  - url: http://127.0.0.1:8000/metrics
//	    server: vllm
//	    timeout: 3s
//	    workload: {pid: 4242}
//	  - url: http://10.0.0.7:80/metrics
//	    server: tgi
//	    model: bigscience/bloom-560m
//	    workload: {namespace: llm, pod: tgi-0}
type TargetConfig struct {
	// URL is the metrics URL; an empty path means the server's default
	// path (Server.DefaultPath).
	URL string `yaml:"url"`
	// Server is auto (default) or one of the Server names.
	Server string `yaml:"server,omitempty"`
	// Model replaces the server's model label (needed for TGI and llama.cpp,
	// which export none).
	Model string `yaml:"model,omitempty"`
	// Timeout bounds one scrape (default: the Scraper's, 5s).
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// BodyLimit is the largest body in bytes (default: the Scraper's, 4 MiB).
	BodyLimit int64 `yaml:"body_limit,omitempty"`
	// Workload tells the agent which workload the server belongs to.
	Workload WorkloadHint `yaml:"workload,omitempty"`
}

// WorkloadHint names the workload an inference server belongs to, for the
// agent to resolve: a Kubernetes pod (Namespace and Pod), a process (PID),
// a local listening port whose process is found with [ListeningPIDs]
// (Port), the processes named by a workload rule (Rule, the rule's name),
// or a systemd unit (SystemdUnit). Rule and SystemdUnit survive restarts of
// the server; a PID does not. At most one kind may be set; none means the
// agent decides (for example from the URL's host and port).
type WorkloadHint struct {
	// Namespace is the Kubernetes namespace of Pod.
	Namespace string `yaml:"namespace,omitempty"`
	// Pod is the Kubernetes pod running the server.
	Pod string `yaml:"pod,omitempty"`
	// PID is the server's process ID.
	PID int `yaml:"pid,omitempty"`
	// Port is a local TCP port the server listens on.
	Port int `yaml:"port,omitempty"`
	// Rule is the name of the workload rule that names the server's
	// processes.
	Rule string `yaml:"rule,omitempty"`
	// SystemdUnit is the systemd service the server runs in, such as
	// "vllm.service".
	SystemdUnit string `yaml:"systemd_unit,omitempty"`
}

// Validate checks the configuration and returns every problem found,
// joined, each prefixed with the target's URL.
func (c TargetConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("scrape target %q: "+format, append([]any{c.URL}, args...)...))
	}
	if c.URL == "" {
		add("url is required")
	} else if !strings.Contains(c.URL, "://") {
		add("url must start with http:// or https://")
	} else if u, err := url.Parse(c.URL); err != nil {
		add("url does not parse: %v", err)
	} else {
		if u.Scheme != "http" && u.Scheme != "https" {
			add("url scheme must be http or https, not %q", u.Scheme)
		}
		if u.Host == "" {
			add("url has no host")
		} else if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				add("url port %q is not 1-65535", p)
			}
		}
		if u.User != nil {
			add("url must not carry credentials")
		}
		if u.Fragment != "" {
			add("url must not have a fragment")
		}
	}
	if _, err := ParseServer(c.Server); err != nil {
		add("server: %v", err)
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		add("timeout %s is not between 0 and %s", c.Timeout, MaxTimeout)
	}
	if c.BodyLimit < 0 {
		add("body_limit %d is negative", c.BodyLimit)
	}
	if strings.TrimSpace(c.Model) != c.Model {
		add("model %q has leading or trailing spaces", c.Model)
	}
	w := c.Workload
	if (w.Namespace != "") != (w.Pod != "") {
		add("workload: namespace and pod go together")
	}
	kinds := 0
	if w.Pod != "" {
		kinds++
	}
	if w.PID != 0 {
		kinds++
	}
	if w.Port != 0 {
		kinds++
	}
	if w.Rule != "" {
		kinds++
	}
	if w.SystemdUnit != "" {
		kinds++
	}
	if kinds > 1 {
		add("workload: set one of pod/namespace, pid, port, rule or systemd_unit")
	}
	if w.PID < 0 {
		add("workload: pid %d is negative", w.PID)
	}
	if w.Port < 0 || w.Port > 65535 {
		add("workload: port %d is not 1-65535", w.Port)
	}
	return errors.Join(errs...)
}

// Target validates the configuration and turns it into a Target whose ID
// is the URL. The caller sets Target.Workload from c.Workload.
func (c TargetConfig) Target() (Target, error) {
	if err := c.Validate(); err != nil {
		return Target{}, err
	}
	srv, _ := ParseServer(c.Server)
	u, _ := url.Parse(c.URL)
	if u.Path == "" || u.Path == "/" {
		u.Path = srv.DefaultPath()
	}
	s := u.String()
	return Target{ID: s, URL: s, Server: srv, Model: c.Model, Timeout: c.Timeout, BodyLimit: c.BodyLimit}, nil
}

// Pod annotations read by [PodTarget].
const (
	// AnnotationScrape opts a pod in when "true".
	AnnotationScrape = "aiwatt.io/scrape"
	// AnnotationPort is the metrics port (default: Server.DefaultPort).
	AnnotationPort = "aiwatt.io/port"
	// AnnotationPath is the metrics path (default: Server.DefaultPath).
	AnnotationPath = "aiwatt.io/path"
	// AnnotationServer is the server name (default auto).
	AnnotationServer = "aiwatt.io/server"
	// AnnotationModel replaces the server's model label (for TGI, llama.cpp).
	AnnotationModel = "aiwatt.io/model"
)

// PodTarget turns a pod's annotations and IP into a Target. ok is false,
// with no error, when the pod does not opt in (AnnotationScrape absent or
// not "true"). An opted-in pod with unusable annotations or no IP yet is an
// error naming the pod. The Target's ID is "pod/NAMESPACE/NAME:PORT"; the
// caller sets Workload.
func PodTarget(namespace, name, podIP string, annotations map[string]string) (t Target, ok bool, err error) {
	if !strings.EqualFold(strings.TrimSpace(annotations[AnnotationScrape]), "true") {
		return Target{}, false, nil
	}
	where := fmt.Sprintf("pod %s/%s", namespace, name)
	srv, err := ParseServer(annotations[AnnotationServer])
	if err != nil {
		return Target{}, true, fmt.Errorf("%s: annotation %s: %w", where, AnnotationServer, err)
	}
	port := srv.DefaultPort()
	if p, set := annotations[AnnotationPort]; set {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 65535 {
			return Target{}, true, fmt.Errorf("%s: annotation %s=%q is not a port number 1-65535", where, AnnotationPort, p)
		}
		port = n
	}
	if port == 0 {
		return Target{}, true, fmt.Errorf("%s: annotation %s is required when %s is %s", where, AnnotationPort, AnnotationServer, srv)
	}
	path := srv.DefaultPath()
	if p, set := annotations[AnnotationPath]; set {
		p = strings.TrimSpace(p)
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t") {
			return Target{}, true, fmt.Errorf("%s: annotation %s=%q must be an absolute path without query", where, AnnotationPath, annotations[AnnotationPath])
		}
		path = p
	}
	ip := net.ParseIP(podIP)
	if ip == nil {
		return Target{}, true, fmt.Errorf("%s: no usable pod IP (%q)", where, podIP)
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), strconv.Itoa(port)), Path: path}
	return Target{
		ID:     fmt.Sprintf("pod/%s/%s:%d", namespace, name, port),
		URL:    u.String(),
		Server: srv,
		Model:  strings.TrimSpace(annotations[AnnotationModel]),
	}, true, nil
}
