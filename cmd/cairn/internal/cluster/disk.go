package cluster

import (
	"fmt"
	"syscall"
)

// On the container platform every node's kubelet and containerd keep their
// files under the state directory, so the kubelets take this machine's
// filesystem for their nodefs and imagefs. At imagefs.available<15% (their
// default hard eviction threshold; nodefs.available<10% comes later) they
// mark their nodes DiskPressure, taint them and evict pods. up warns below
// minAvailable: the 15% plus room for the images the nodes import and the
// pods' logs and emptyDirs.
const (
	minAvailable    = 0.20
	evictionPercent = 15
)

// checkDisk is diskWarning for the filesystem of dir, or "" when it cannot
// be read (up finds out soon enough what is wrong with dir).
func checkDisk(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Frsize <= 0 {
		return ""
	}
	return diskWarning(dir, st.Blocks, st.Bavail, uint64(st.Frsize))
}

// diskWarning says what a filesystem holding the state directory dir, of
// blocks blocks of frsize bytes with avail of them available, does to the
// container nodes' kubelets, or "" when it has room. It reckons as the
// kubelet (cadvisor) does: available = Bavail*Frsize of capacity =
// Blocks*Frsize, so the blocks reserved for root count as used, which df's
// Use% leaves out.
func diskWarning(dir string, blocks, avail, frsize uint64) string {
	if blocks == 0 {
		return ""
	}
	frac := float64(avail) / float64(blocks)
	if frac >= minAvailable {
		return ""
	}
	gb := func(n uint64) float64 { return float64(n) * float64(frsize) / 1e9 }
	return fmt.Sprintf("warning: %s's filesystem has %.1f GB available, %.1f%% of %.0f GB: the nodes' kubelets see this filesystem, and under %d%% they mark their nodes DiskPressure and evict pods; free some room first",
		dir, gb(avail), 100*frac, gb(blocks), evictionPercent)
}
