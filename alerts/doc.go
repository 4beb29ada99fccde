// Package alerts owns aiwatt's Prometheus recording and alerting rules: the rule files under
// rules/ (embedded here so that other parts, such as a Helm chart generator or an end-to-end test,
// can load exactly what is tested), their promtool unit tests under tests/, and the metric
// contract that rules and dashboards may query.
//
// Rule files:
//
//   - rules/aiwatt-recording.yml: power per node, GPU, workload, namespace and project; energy per
//     request and per output token by model_id; CO2e per 1,000 requests; an SCI-style rate;
//     facility power with a PUE; energy-budget burn rates.
//   - rules/aiwatt-alerts.yml: the alerts, each with severity, summary, description and a
//     runbook_url pointing at docs/runbooks/<alertname>.md.
//   - rules/aiwatt-config.yml: site configuration expressed as rules (default PUE, energy budgets).
//
// The package must not import the agent, exporter or any hardware package: rules are written
// against the exported metric contract ([ContractMetrics]) and nothing else.
package alerts
