//go:build !linux || !cgo

package dcgm

import (
	"fmt"
	"log/slog"
	"runtime"
)

// openNVML reports ErrNoData: NVML needs Linux and cgo.
func openNVML(_ *slog.Logger) (Backend, error) {
	return nil, fmt.Errorf("%w: NVML backend not built in (needs linux and cgo; this build is %s, cgo off or not linux)", ErrNoData, runtime.GOOS)
}
