package exporter

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cachedCollector serves another collector's metrics from memory, collecting
// them again at most once per ttl. It keeps the process collector (which
// reads /proc/self/stat, limits, fds and netstat) off the scrape path, so a
// scrape touches no files: process metrics are then at most ttl old, like
// every other aiwatt metric, which is at most one sampling interval old.
type cachedCollector struct {
	inner prometheus.Collector
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

var _ prometheus.Collector = (*cachedCollector)(nil)

func newCachedCollector(inner prometheus.Collector, ttl time.Duration) *cachedCollector {
	return &cachedCollector{inner: inner, ttl: ttl, now: time.Now}
}

// Describe implements prometheus.Collector.
func (c *cachedCollector) Describe(ch chan<- *prometheus.Desc) { c.inner.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *cachedCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.metrics == nil || c.now().Sub(c.at) >= c.ttl {
		fresh := make(chan prometheus.Metric, 64)
		go func() { c.inner.Collect(fresh); close(fresh) }()
		c.metrics = c.metrics[:0]
		for m := range fresh {
			c.metrics = append(c.metrics, m)
		}
		c.at = c.now()
	}
	metrics := c.metrics
	c.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}
