package attribution

import (
	"fmt"
	"testing"
	"time"
)

// benchTick is a busy inference node: 2 sockets (package and DRAM each), 200
// pods with 2000 processes (one in ten in no pod), and 8 GPUs: 2 exclusive,
// 2 time-sliced between 4 pods, 2 in MIG mode with 3 instances, 2 shared.
func benchTick() []Device {
	pods := make([]Key, 200)
	for i := range pods {
		pods[i] = Key{Namespace: fmt.Sprintf("team-%d", i%12), Pod: fmt.Sprintf("serve-%d-7d9f8", i), Container: "server",
			Project: "search", ModelID: fmt.Sprintf("model-%d", i%17), WorkloadType: "inference"}
	}
	var cpuAct, alloc []Share
	for p := range 2000 {
		k := pods[p%200]
		if p%10 == 9 {
			k = Key{}
		}
		cpuAct = append(cpuAct, Share{Key: k, Weight: float64(p%37) * 0.01})
	}
	for i, k := range pods {
		alloc = append(alloc, Share{Key: k, Weight: float64(1 + i%4)})
	}
	var devs []Device
	for s := range 2 {
		for _, c := range []Component{CPU, DRAM} {
			devs = append(devs, Device{ID: fmt.Sprintf("%d/%v", s, c), Component: c, Joules: 400, Busy: 0.6,
				Claims: Claims{Activity: cpuAct, Allocation: alloc}})
		}
	}
	for g := range 8 {
		d := Device{ID: fmt.Sprintf("GPU-%d", g), Component: GPU, Joules: 3500, Busy: 0.8}
		switch g / 2 {
		case 0:
			d.Holder = &pods[g]
		case 1:
			for i := range 4 {
				d.Activity = append(d.Activity, Share{Key: pods[10+4*g+i], Weight: 20})
				d.Allocation = append(d.Allocation, Share{Key: pods[10+4*g+i], Weight: 1})
			}
		case 2:
			d.MIG = []MIGInstance{
				{Profile: "3g.40gb", Claims: Claims{Holder: &pods[40+g]}},
				{Profile: "2g.20gb", Claims: Claims{Holder: &pods[50+g]}},
				{Profile: "1g.10gb", Claims: Claims{Activity: []Share{{pods[60+g], 10}, {pods[70+g], 5}}}},
			}
		case 3:
			for i := range 50 {
				d.Activity = append(d.Activity, Share{Key: pods[(100+i)%200], Weight: float64(i % 7)})
			}
		}
		devs = append(devs, d)
	}
	return devs
}

func BenchmarkAttributeTick(b *testing.B) {
	devs := benchTick()
	for _, p := range []IdlePolicy{IdleNode, IdleAllocation} {
		b.Run(string(p), func(b *testing.B) {
			a := Attributor{Policy: Policy{Idle: p}}
			b.ReportAllocs()
			for b.Loop() {
				a.Attribute(devs)
			}
		})
	}
	// A sampling loop's way: the previous tick's results passed back.
	b.Run("node-reused", func(b *testing.B) {
		a := Attributor{Policy: Policy{Idle: IdleNode}}
		var res []Result
		b.ReportAllocs()
		for b.Loop() {
			res = a.AttributeTo(res, devs)
		}
	})
}

func BenchmarkLedgerAdd(b *testing.B) {
	res := Attribute(Policy{Idle: IdleAllocation}, benchTick())
	l, _ := NewLedger(LedgerOptions{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		l.Add(now, res)
	}
}
