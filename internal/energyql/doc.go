// Package energyql owns the one PromQL expression aiwatt's report and gate
// use for "how much did a counter rise over a window": an expression whose
// answer is the same on Prometheus, Thanos and VictoriaMetrics.
//
// Prometheus's increase() extrapolates the first and last samples towards
// the window's edges, and VictoriaMetrics' increase() does not extrapolate
// but starts from the last sample before the window (and counts a series'
// first sample as a rise from zero). Over a short window, or for a series
// that starts or stops inside it, the two differ by up to a scrape interval's
// worth of the counter, which for a one-minute window is more than 1 %.
// Every engine gives max_over_time, min_over_time and resets over a window
// from the raw samples inside it, with no extrapolation, so for a counter
// with no reset in the window
//
//	max_over_time(c[w]) - min_over_time(c[w])
//
// is its last sample minus its first sample in the window on every engine.
// aiwatt's counters reset only when an agent restarts; a series with a
// reset in the window falls back to the engine's own increase(), and the
// report counts such series as a data-quality note (see Resets).
//
// It imports nothing but the standard library.
package energyql
