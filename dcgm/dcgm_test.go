package dcgm

import (
	"time"

	"github.com/inferensys/aiwatt/internal/sourcetest"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

var (
	mustSample   = sourcetest.MustSample
	wantNoErrors = sourcetest.WantNoErrors
)
