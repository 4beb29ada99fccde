package cpustat

import "testing"

func TestBusyTotal(t *testing.T) {
	for _, c := range []struct {
		name                                           string
		user, nice, system, idle, iowait, irq, softirq float64
		busy, total                                    float64
	}{
		{"busy fields", 10, 2, 3, 0, 0, 4, 5, 24, 24},
		{"idle and iowait are idle", 0, 0, 0, 70, 30, 0, 0, 0, 100},
		{"mixed", 100, 0, 50, 800, 25, 10, 15, 175, 1000},
	} {
		busy, total := BusyTotal(c.user, c.nice, c.system, c.idle, c.iowait, c.irq, c.softirq)
		if busy != c.busy || total != c.total {
			t.Errorf("%s: busy %v total %v, want %v %v", c.name, busy, total, c.busy, c.total)
		}
	}
}
