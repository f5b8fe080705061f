package cluster

import (
	"strings"
	"testing"
)

func TestDiskWarning(t *testing.T) {
	tests := []struct {
		name                  string
		dir                   string
		blocks, avail, frsize uint64
		want                  string // the whole line; "" for none
		has                   []string
	}{
		{name: "plenty of room", dir: "/var/lib/cairn-cluster", blocks: 61523438, avail: 36621094, frsize: 4096},
		{name: "20% exactly", dir: "/var/lib/cairn-cluster", blocks: 1000, avail: 200, frsize: 4096},
		{name: "0 blocks", dir: "/var/lib/cairn-cluster", blocks: 0, avail: 0, frsize: 4096},
		{name: "0 blocks, some available", dir: "/var/lib/cairn-cluster", blocks: 0, avail: 10, frsize: 4096},
		{name: "15.5% of 252 GB", dir: "/var/lib/cairn-cluster", blocks: 61523438, avail: 9545899, frsize: 4096,
			want: "warning: /var/lib/cairn-cluster's filesystem has 39.1 GB available, 15.5% of 252 GB: the nodes' kubelets see this filesystem, and under 15% they mark their nodes DiskPressure and evict pods; free some room first"},
		{name: "19.9%, another directory", dir: "/srv/clusters", blocks: 1000, avail: 199, frsize: 1e6,
			has: []string{"/srv/clusters's filesystem", "19.9% of 1 GB", "DiskPressure"}},
		{name: "under the 10% nodefs threshold: the same warning", dir: "/var/lib/cairn-cluster", blocks: 100000, avail: 5000, frsize: 1e6,
			has: []string{"5.0 GB available, 5.0% of 100 GB", "evict pods"}},
		{name: "1 KiB fragments", dir: "/d", blocks: 100e6, avail: 10e6, frsize: 1024,
			has: []string{"10.2 GB available, 10.0% of 102 GB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diskWarning(tt.dir, tt.blocks, tt.avail, tt.frsize)
			if tt.has == nil {
				if got != tt.want {
					t.Errorf("diskWarning(%d of %d blocks) =\n  %q\nwant\n  %q", tt.avail, tt.blocks, got, tt.want)
				}
				return
			}
			for _, s := range tt.has {
				if !strings.Contains(got, s) {
					t.Errorf("diskWarning(%d of %d blocks) = %q, want it to say %q", tt.avail, tt.blocks, got, s)
				}
			}
		})
	}
}
