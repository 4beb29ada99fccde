// Package fleet holds the end-to-end test of aiwatt over a fleet of
// clusters (issue 19): two clusters, each with its own Prometheus (one of
// them a replicated pair) scraping its own aiwatt agents driven by fixture
// RAPL trees and a dcgm-exporter capture, aiwatt's recording rules loaded in
// each; Thanos (a sidecar per Prometheus and a Querier deduplicating the
// pair) and VictoriaMetrics (fed by remote_write) on top. `aiwatt report`
// and `aiwatt gate` run against every engine and are checked against the
// injected energy and against each other; a store stopped behind Thanos
// must show as a gap in the report and make the gate exit 2.
//
// The engines are real binaries on 127.0.0.1: Debian's prometheus and
// victoria-metrics, and Thanos built from its Go module by
// scripts/thanos.sh (`make fleet-deps`). The package has no non-test code.
package fleet
