// Package dashboards owns aiwatt's Grafana dashboards. They are built in Go with the Grafana
// Foundation SDK ([All]) and committed as JSON under json/, one file per dashboard, so that they can
// be provisioned from files, a ConfigMap or the Helm chart without running Go. Regenerate after a
// change with:
//
//	go generate ./dashboards/
//
// The tests fail when the committed JSON differs from what the code generates, and when a panel
// queries a metric that is neither in the metric contract nor recorded by alerts/rules.
//
// The package must not import the agent, exporter or hardware packages: dashboards are written
// against the exported metrics and the recording rules only.
package dashboards

//go:generate go run ./cmd/gen -out json
