package gpu

import "testing"

func TestSlicesOf(t *testing.T) {
	for _, c := range []struct {
		model string
		want  int
	}{
		{"NVIDIA A30", 4},
		{"NVIDIA A100-SXM4-40GB", 7},
		{"NVIDIA A100 80GB PCIe", 7},
		{"NVIDIA H100 80GB HBM3", 7},
		{"NVIDIA H200", 7},
		{"NVIDIA B200", 7},
		{"NVIDIA GB200", 7},
		{"NVIDIA RTX PRO 6000 Blackwell Server Edition", 4},
		{"NVIDIA L4", 0},
		{"Tesla T4", 0},
		{"", 0},
	} {
		if got := SlicesOf(c.model); got != c.want {
			t.Errorf("SlicesOf(%q) = %d, want %d", c.model, got, c.want)
		}
	}
}
