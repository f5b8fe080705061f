package config

import (
	"strings"
	"testing"
	"time"
)

// lanDoc is a node at 192.168.1.11/24 on its link lan; vipDoc adds
// the VIP 192.168.1.100 (the kubernetes section last, open for more keys).
const (
	lanDoc = "network:\n  version: 2\n  ethernets:\n    lan:\n      addresses: [192.168.1.11/24]\n"
	vipDoc = lanDoc + "kubernetes:\n  vip: 192.168.1.100\n"
)

// wantLines fails t unless got, the lines a user sees, is as many lines as
// want, each starting with its want, in order.
func wantLines(t *testing.T, got string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if got == "" {
		lines = nil
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i, lines[i], w)
		}
	}
}

// TestVIPTimings: the election's timing keys, each problem as the line a
// user sees, and the durations a server runs with.
func TestVIPTimings(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // every line printed, in order; nil: none
		timings   VIPTimings
	}{
		{"defaults", vipDoc, nil, VIPTimings{2 * time.Second, 1500 * time.Millisecond, 500 * time.Millisecond}},
		{"all three", vipDoc + "  vip-lease-duration: 5s\n  vip-renew-deadline: 3s\n  vip-retry-period: 1s\n", nil,
			VIPTimings{5 * time.Second, 3 * time.Second, time.Second}},
		{"no unit", vipDoc + "  vip-lease-duration: 2\n",
			[]string{`c:8:23: error: kubernetes.vip-lease-duration "2" is not a positive duration; write it with a unit, like 2s or 500ms`}, VIPTimings{}},
		{"negative", vipDoc + "  vip-retry-period: -1s\n",
			[]string{`c:8:21: error: kubernetes.vip-retry-period "-1s" is not a positive duration`}, VIPTimings{}},
		{"renew deadline too close to the lease", vipDoc + "  vip-renew-deadline: 1900ms\n",
			[]string{"c:8:23: error: kubernetes.vip-renew-deadline 1.9s must be at least 200ms shorter than kubernetes.vip-lease-duration 2s"}, VIPTimings{}},
		{"lease shorter than the default deadline", vipDoc + "  vip-lease-duration: 1s\n",
			[]string{"c:8:23: error: kubernetes.vip-renew-deadline 1.5s must be at least 200ms shorter than kubernetes.vip-lease-duration 1s"}, VIPTimings{}},
		{"retry period not under the deadline", vipDoc + "  vip-retry-period: 1500ms\n",
			[]string{"c:8:21: error: kubernetes.vip-retry-period 1.5s must be shorter than kubernetes.vip-renew-deadline 1.5s"}, VIPTimings{}},
		{"retry period too short", vipDoc + "  vip-retry-period: 10ms\n",
			[]string{"c:8:21: error: kubernetes.vip-retry-period 10ms is shorter than 100ms"}, VIPTimings{}},
		{"lease too long", vipDoc + "  vip-lease-duration: 1h\n  vip-renew-deadline: 50m\n",
			[]string{"c:8:23: error: kubernetes.vip-lease-duration 1h0m0s is longer than 5m0s"}, VIPTimings{}},
		{"without vip", lanDoc + "kubernetes:\n  vip-retry-period: 1s\n",
			[]string{"c:7:21: warning: kubernetes.vip-retry-period is set but vip is not; it is ignored"}, VIPTimings{}},
		{"on an agent", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n  vip-lease-duration: 4s\n",
			[]string{"c:5:23: warning: kubernetes.vip-lease-duration is a server setting (servers elect the VIP's holder); agents ignore it"}, VIPTimings{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			wantLines(t, messages(diags), tt.want)
			if tt.timings == (VIPTimings{}) {
				return
			}
			got2, err := cfg.Kubernetes.VIPTimings()
			if err != nil || got2 != tt.timings {
				t.Errorf("VIPTimings() = %+v, %v; want %+v", got2, err, tt.timings)
			}
		})
	}
}
