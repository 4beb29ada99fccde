package gpu

import "strings"

// migSlices lists the compute slices of each MIG-capable product, by a
// substring of its model name, from NVIDIA's MIG user guide ("Supported
// GPUs", maximum number of instances). Longer, more specific names come
// first.
var migSlices = []struct {
	model  string
	slices int
}{
	{"RTX PRO 6000", 4},
	{"RTX PRO 5000", 2},
	{"RTX PRO 4500", 2},
	{"A30", 4},
	{"A100", 7},
	{"H100", 7},
	{"H200", 7},
	{"H20", 7},
	{"GH200", 7},
	{"GB200", 7},
	{"B200", 7},
}

// DefaultMIGSlices is what SlicesOf assumes for a GPU in MIG mode whose
// model it does not know: the slice count of every data-centre MIG GPU but
// the A30.
const DefaultMIGSlices = 7

// SlicesOf returns the number of MIG compute slices of a GPU model, such as
// "NVIDIA A30" (4) or "NVIDIA H100 80GB HBM3" (7); 0 when the model is not
// known to support MIG.
func SlicesOf(model string) int {
	m := strings.ToUpper(model)
	for _, e := range migSlices {
		if strings.Contains(m, e.model) {
			return e.slices
		}
	}
	return 0
}
