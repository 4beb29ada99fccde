package source

import (
	"context"
	"errors"
	"io/fs"
)

// Reason is the reason label of aiwatt_source_errors_total: one short, fixed
// string from the vocabulary below, shared by every source.
type Reason = string

// The reason vocabulary. A source counts each failure under exactly one.
const (
	// ReasonPermissionDenied is a read refused by permissions (RAPL energy_uj is root-only).
	ReasonPermissionDenied Reason = "permission_denied"
	// ReasonReadError is any other failed read of a file or device.
	ReasonReadError Reason = "read_error"
	// ReasonParseError is content that is not what the format says.
	ReasonParseError Reason = "parse_error"
	// ReasonTimeout is a sample, request or lookup that ran past its deadline.
	ReasonTimeout Reason = "timeout"
	// ReasonImplausibleDelta is an energy step above the plausibility ceiling; it is not added.
	ReasonImplausibleDelta Reason = "implausible_delta"
	// ReasonCounterReset is a counter that went backwards (driver reload); counting goes on.
	ReasonCounterReset Reason = "counter_reset"
	// ReasonInvalidValue is a value that cannot be energy (NaN, negative, absurdly large); it is dropped.
	ReasonInvalidValue Reason = "invalid_value"
	// ReasonHTTPStatus is an HTTP answer with a status other than 200.
	ReasonHTTPStatus Reason = "http_status"
	// ReasonBodyTooLarge is an HTTP body over the size limit.
	ReasonBodyTooLarge Reason = "body_too_large"
	// ReasonRequestError is a request that failed otherwise (connection refused, reset).
	ReasonRequestError Reason = "request_error"
	// ReasonGPULost is a GPU that fell off the bus or vanished; its total is kept.
	ReasonGPULost Reason = "gpu_lost"
	// ReasonMissingEnergy is a GPU row with neither an energy counter nor a power gauge.
	ReasonMissingEnergy Reason = "missing_energy"
	// ReasonBadTarget is a configured or annotated target that cannot be scraped as given.
	ReasonBadTarget Reason = "bad_target"
	// ReasonLookupError is a carbon-intensity lookup that no link of the chain could answer.
	ReasonLookupError Reason = "lookup_error"
	// ReasonBackoff is a provider skipped because it is backing off after failures.
	ReasonBackoff Reason = "backoff"
)

// ReasonOf classifies a read error: timeout for a context deadline,
// permission_denied for fs.ErrPermission, read_error otherwise.
func ReasonOf(err error) Reason {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, fs.ErrPermission):
		return ReasonPermissionDenied
	}
	return ReasonReadError
}
