// Package gate checks recorded energy against a budget: it asks Prometheus
// (through its HTTP API) how much energy the series matched by a selector
// used over a window and says whether that is within budget. It backs
// `aiwatt gate`, the step a CI pipeline or an MLOps workflow runs to fail a
// training job or a deployment that used more energy than it was allowed.
//
// The energy is each counter's last minus first sample in the window (the
// expression of internal/energyql), which Prometheus, Thanos and
// VictoriaMetrics compute alike; a partial response (warnings, as Thanos
// gives when a store is down) is an error (ErrPartial), never a pass.
//
// No data is an error, never a pass: a selector that matches nothing (a typo,
// a run that was never measured) must not let a job through. Nor does
// untrustworthy data (ErrBadData): a negative result, or an answer that came
// with warnings (a partial response from Thanos or Mimir) exits 2 with the
// reason. "mJ" and "mWh" are refused rather than read as milli or mega.
//
// The package owns energy quantities as users write them ("50kWh", "3.6 MJ")
// and the text, JSON and JUnit renderings of a verdict. It imports no agent
// code.
package gate
