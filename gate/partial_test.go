package gate

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// warningQuerier answers with a value and the warnings a global engine
// gives when a store behind it is down.
type warningQuerier struct{ warnings v1.Warnings }

func (w warningQuerier) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Vector{{Value: 1}}, w.warnings, nil, nil
}

func TestPartialResponseIsAnError(t *testing.T) {
	q := warningQuerier{v1.Warnings{"No StoreAPIs matched for this query"}}
	r, err := Check(context.Background(), q, Request{Selector: `project="x"`, Window: time.Hour, Budget: 1e9})
	if !errors.Is(err, ErrPartial) || ExitCode(r, err) != 2 || len(r.Warnings) != 1 {
		t.Fatalf("want ErrPartial and exit 2, got %v, exit %d, warnings %v", err, ExitCode(r, err), r.Warnings)
	}
	r, err = Check(context.Background(), warningQuerier{}, Request{Selector: `project="x"`, Window: time.Hour, Budget: 1e9})
	if err != nil || ExitCode(r, err) != 0 {
		t.Fatalf("without warnings: %v, exit %d", err, ExitCode(r, err))
	}
}
