package ledger

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inferensys/aiwatt/cloud"
)

var (
	co2eDesc = prometheus.NewDesc("aiwatt_cloud_co2e_kilograms",
		"Provider-reported CO2e of a period in kilograms, from the cloud ledger (newest model version per key).",
		[]string{"provider", "account", "service", "region", "period", "scope", "basis"}, nil)
	costDesc = prometheus.NewDesc("aiwatt_cloud_cost",
		"Provider-reported spend of a period in the currency named by the currency label, from the cloud ledger.",
		[]string{"provider", "account", "service", "region", "period", "currency"}, nil)
	usageDesc = prometheus.NewDesc("aiwatt_cloud_usage",
		"Provider-reported usage quantity of a period in the provider's unit, from the cloud ledger.",
		[]string{"provider", "account", "service", "region", "period", "unit"}, nil)
	rowsDesc = prometheus.NewDesc("aiwatt_cloud_ledger_rows",
		"Current rows in the cloud ledger.", nil, nil)
)

// Collector serves the ledger's current rows as gauges from a snapshot
// taken by Refresh, so a scrape reads no file.
type Collector struct {
	l    *Ledger
	snap atomic.Pointer[[]Row]
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over l with an empty snapshot.
func NewCollector(l *Ledger) *Collector {
	c := &Collector{l: l}
	c.snap.Store(&[]Row{})
	return c
}

// Refresh re-reads the ledger. Where a key has rows under several model
// versions, only the most recently fetched (then the greatest version) is
// kept, so a gauge never counts one period twice.
func (c *Collector) Refresh(ctx context.Context) error {
	rows, err := c.l.Rows(ctx)
	if err != nil {
		return err
	}
	type k struct {
		p, a, s, r, per string
		m               cloud.Metric
	}
	best := map[k]int{}
	var out []Row
	for _, row := range rows {
		key := k{row.Provider, row.Account, row.Service, row.Region, row.Period, row.Metric}
		i, ok := best[key]
		if !ok {
			best[key] = len(out)
			out = append(out, row)
			continue
		}
		cur := out[i]
		if row.FetchedAt > cur.FetchedAt || (row.FetchedAt == cur.FetchedAt && row.ModelVersion > cur.ModelVersion) {
			out[i] = row
		}
	}
	c.snap.Store(&out)
	return nil
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- co2eDesc
	ch <- costDesc
	ch <- usageDesc
	ch <- rowsDesc
}

// Collect sends one gauge per snapshot row.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	rows := *c.snap.Load()
	for _, r := range rows {
		switch {
		case r.Metric.IsCO2e():
			scope, basis := r.Metric.ScopeBasis()
			ch <- prometheus.MustNewConstMetric(co2eDesc, prometheus.GaugeValue, r.Value,
				r.Provider, r.Account, r.Service, r.Region, r.Period, scope, basis)
		case r.Metric == cloud.Cost:
			ch <- prometheus.MustNewConstMetric(costDesc, prometheus.GaugeValue, r.Value,
				r.Provider, r.Account, r.Service, r.Region, r.Period, r.Unit)
		case r.Metric == cloud.Usage:
			ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.GaugeValue, r.Value,
				r.Provider, r.Account, r.Service, r.Region, r.Period, r.Unit)
		}
	}
	ch <- prometheus.MustNewConstMetric(rowsDesc, prometheus.GaugeValue, float64(len(rows)))
}
