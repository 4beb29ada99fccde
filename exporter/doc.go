// Package exporter serves the aiwatt agent's snapshots to Prometheus: a
// collector that turns the latest agent.Snapshot into metrics (touching no
// hardware and no files during a scrape), and the HTTP handler with the
// landing page, /metrics, health endpoints and POST /-/reload. TLS and basic
// auth come from the Prometheus exporter-toolkit in cmd/aiwatt.
//
// The exporter only reads snapshots: it never samples a source itself, and a
// snapshot is self-contained (label-ready values), so the exporter imports
// no hardware or attribution package.
package exporter
