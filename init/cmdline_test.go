package main

import "testing"

func TestCmdline(t *testing.T) {
	c := readCmdline("console=ttyS0,115200 cairn.system=live cairn.debug ds=nocloud;s=http://10.0.2.2/ cairn.config=a cairn.config=b")
	for _, tc := range []struct {
		key  string
		has  bool
		want string
	}{
		{"cairn.system", true, "live"},
		{"cairn.debug", true, ""},
		{"cairn.config", true, "b"},
		{"ds", true, "nocloud;s=http://10.0.2.2/"},
		{"cairn", false, ""},
		{"console", true, "ttyS0,115200"},
	} {
		if got := c.Has(tc.key); got != tc.has {
			t.Errorf("Has(%q) = %v, want %v", tc.key, got, tc.has)
		}
		if got := c.Get(tc.key); got != tc.want {
			t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
