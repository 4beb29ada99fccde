package energyql

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestIncreaseParses(t *testing.T) {
	for _, sel := range []string{"aiwatt_workload_energy_joules_total", `aiwatt_workload_energy_joules_total{project="llm",run_id="r1"}`} {
		q := Increase(sel, "30d")
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		// The top level is "or": reset-free series first, increase() for the rest.
		b, ok := e.(*parser.ParenExpr).Expr.(*parser.BinaryExpr)
		if !ok || b.Op.String() != "or" {
			t.Fatalf("%s: top level is %T %v, want or", q, e, e)
		}
		l, ok := b.LHS.(*parser.BinaryExpr)
		if !ok || l.Op.String() != "and" {
			t.Fatalf("%s: left of or is %v, want and", q, b.LHS)
		}
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(Resets("aiwatt_gpu_energy_joules_total", "1h", "cluster")); err != nil {
		t.Fatal(err)
	}
}
