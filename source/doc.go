// Package source is the contract every sampling source of the agent
// implements, and the vocabulary they share.
//
// # What it owns
//
//   - [Source]: Name and Sample(ctx, now). The agent's tick runs every source
//     concurrently under one deadline and records each one's health
//     (aiwatt_source_up, aiwatt_source_errors_total,
//     aiwatt_sample_duration_seconds) in one place.
//   - [Reading]: what a source saw since its previous sample: energy as
//     typed integer deltas ([Microjoules]), errors counted by [Reason], per
//     target health, and a source-specific detail the agent's attribution
//     step reads.
//   - [ErrAbsent]: the sentinel of a source that has nothing to read here
//     (no RAPL, no GPU, not configured). Absent is not failed: it is logged
//     at info level and never counted as an error.
//   - The one [Reason] vocabulary used in the reason label of
//     aiwatt_source_errors_total by every source.
//
// Hardware sources return deltas: the agent keeps the only totals, so a
// reload or a re-discovery that swaps a source's configuration never touches
// a total or a baseline. A source whose Sample misses the tick's deadline is
// reported as [ReasonTimeout]; its counters are cumulative, so the energy of
// the late sample arrives with a later reading and nothing is lost.
//
// The package imports nothing of aiwatt: hardware packages (rapl, dcgm, gpu)
// and the agent all depend on it, never the other way round.
package source
