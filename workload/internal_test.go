package workload

import "testing"

// CPUID 1 EAX of AMD's product lines, as the firmware reports them
// (extended family in bits 20-27 from family 0x10 on).
func TestCPUSignatures(t *testing.T) {
	for name, c := range map[string]struct {
		family, model, stepping, want uint64
	}{
		"Naples":        {0x17, 0x01, 2, 0x00800F12},
		"Rome":          {0x17, 0x31, 0, 0x00830F10},
		"Milan":         {0x19, 0x01, 1, 0x00A00F11},
		"Genoa":         {0x19, 0x11, 0, 0x00A10F10},
		"family 0xF":    {0x0F, 0x00, 0, 0x00000F00},
		"family 0x10":   {0x10, 0x00, 0, 0x00100F00},
		"family 0xE":    {0x0E, 0x02, 3, 0x00000E23},
		"model nibbles": {0x19, 0x21, 2, 0x00A20F12},
	} {
		if got := cpuSig(c.family, c.model, c.stepping); got != c.want {
			t.Errorf("%s: %08X, want %08X", name, got, c.want)
		}
	}
}

// Versions order by number, then a release before its pre-releases, then
// pre-releases by name; equal versions are not newer.
func TestVersionOrder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"v1.10.0", "v1.9.0", true}, {"v1.9.0", "v1.10.0", false},
		{"v2.0.0", "v1.9.9", true}, {"v1.0.1", "v1.0.0", true},
		{"v1.0.0", "v1.0.0-rc1", true}, {"v1.0.0-rc1", "v1.0.0", false},
		{"v1.0.0-rc2", "v1.0.0-rc1", true}, {"v1.0.0-rc1", "v1.0.0-rc2", false},
		{"v1.0.0", "v1.0.0", false}, {"v1.0.0-rc1", "v1.0.0-rc1", false},
	} {
		if got := newer(c.a, c.b); got != c.want {
			t.Errorf("newer(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
