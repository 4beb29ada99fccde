package exporter

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// HandlerOptions configure the agent's HTTP handler.
type HandlerOptions struct {
	// Source is what /metrics serves.
	Source Source
	// Reload re-reads the configuration; POST /-/reload calls it. Nil disables the endpoint.
	Reload func() error
	// MetricsPath is where metrics are served (default /metrics).
	MetricsPath string
	// MaxRequests limits concurrent scrapes (0 = no limit).
	MaxRequests int
	// Logger receives errors from the metrics handler.
	Logger *slog.Logger
	// ProcessMetricsTTL is how long process metrics (CPU, memory, file
	// descriptors of the agent itself) are served from memory before they are
	// read again (default 5s, the sampling interval).
	ProcessMetricsTTL time.Duration
}

// NewRegistry returns a registry with the aiwatt collector over src plus
// build info, Go runtime metrics, and process metrics refreshed at most once
// per processTTL so that a scrape reads no files.
func NewRegistry(src Source, processTTL time.Duration) *prometheus.Registry {
	if processTTL <= 0 {
		processTTL = 5 * time.Second
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		versioncollector.NewCollector("aiwatt"),
		collectors.NewGoCollector(),
		newCachedCollector(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), processTTL),
	)
	return reg
}

// NewHandler returns the agent's HTTP handler: the landing page, metrics,
// /-/healthy, /-/ready and POST /-/reload.
func NewHandler(opts HandlerOptions) (http.Handler, error) {
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	reg := NewRegistry(opts.Source, opts.ProcessMetricsTTL)
	mux := http.NewServeMux()
	mux.Handle(opts.MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: opts.MaxRequests,
		EnableOpenMetrics:   true,
	}))
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "OK") }
	mux.HandleFunc("/-/healthy", ok)
	mux.HandleFunc("/-/ready", ok)
	if opts.Reload != nil {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				w.Header().Set("Allow", "POST, PUT")
				http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
				return
			}
			if err := opts.Reload(); err != nil {
				http.Error(w, "reload refused: "+err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "configuration reloaded")
		})
	}
	if opts.MetricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "aiwatt",
			Description: "Energy and carbon of AI workloads, per project, model and request",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: opts.MetricsPath, Text: "Metrics"},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}
