//go:build !linux || !cgo

package nvml

import (
	"fmt"
	"log/slog"
	"runtime"
)

// Open reports gpu.ErrNoData: NVML needs Linux and cgo.
func Open(_ *slog.Logger) (Backend, error) {
	return nil, fmt.Errorf("%w: NVML backend not built in (needs linux and cgo; this build is %s, cgo off or not linux)", gpu.ErrNoData, runtime.GOOS)
}
