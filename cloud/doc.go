// Package cloud pulls AI/ML spend, usage and carbon figures from cloud
// provider APIs into an idempotent ledger. It owns the provider-neutral
// record and batch types, the validation every pulled batch passes before it
// reaches the ledger, the retry policy (exponential backoff with full jitter
// that honours Retry-After) and the runner that executes one task per
// provider under a per-run deadline and summarises what was fetched, skipped
// and failed.
//
// Provider clients live in cloud/aws, cloud/azure and cloud/gcp; the SQLite
// ledger lives in cloud/ledger. This package imports no cloud SDK and no
// database driver. Nothing under cloud/ may be imported by the agent binary
// (cmd/aiwatt): the DaemonSet image must not link cloud SDKs; the
// cmd/aiwatt-cloud binary is the only consumer.
package cloud
