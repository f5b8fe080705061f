package config

import (
	"path"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config/layout"
)

// DefaultLocalStoragePath is where the local-storage add-on (rancher's
// local-path provisioner, k3s's default StorageClass) keeps volumes on
// every node: under the node's state, so on the STATE partition when the
// node has one. k3s's default is /var/lib/rancher/k3s/storage.
const DefaultLocalStoragePath = layout.StateDir + "/storage"

// maxStoragePath bounds default-local-storage-path.
const maxStoragePath = 1024

// LocalStoragePath is the directory local-path volumes are made in on
// every node: default-local-storage-path, or DefaultLocalStoragePath.
func (k *Kubernetes) LocalStoragePath() string {
	if k.DefaultLocalStoragePath == "" {
		return DefaultLocalStoragePath
	}
	return k.DefaultLocalStoragePath
}

// storagePathChar says whether c may appear in default-local-storage-path:
// the path is written into the provisioner's config.json as is, so no
// quotes, backslashes, spaces or control characters.
func storagePathChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+@:", c)
}

// localStorage checks default-local-storage-path.
func (ck *checker) localStorage() {
	k := &ck.c.Kubernetes
	const key = "kubernetes.default-local-storage-path"
	p := k.DefaultLocalStoragePath
	if !ck.set(key) {
		return
	}
	switch {
	case p == "":
		ck.errorf(key, "%s is empty; give an absolute directory, or leave it out for %s", key, DefaultLocalStoragePath)
		return
	case len(p) > maxStoragePath:
		ck.errorf(key, "%s is %d bytes long; at most %d", key, len(p), maxStoragePath)
		return
	case strings.IndexFunc(p, func(c rune) bool { return !storagePathChar(c) }) >= 0:
		ck.errorf(key, "%s %q holds a character other than letters, digits and / . _ - + @ :; choose a plainer directory", key, p)
		return
	case !strings.HasPrefix(p, "/"):
		ck.errorf(key, "%s %q is relative; give an absolute directory, like %s", key, p, DefaultLocalStoragePath)
		return
	case path.Clean(p) != p:
		ck.errorf(key, "%s %q is not a clean path; write it as %s", key, p, path.Clean(p))
		return
	case p == "/":
		ck.errorf(key, "%s is /; volumes need a directory of their own, like %s", key, DefaultLocalStoragePath)
		return
	}
	switch {
	case k.Role == "agent":
		ck.warnf(key, "%s is a server setting (the servers tell the provisioner where volumes go on every node); agents ignore it", key)
	case slices.Contains(k.Disable, "local-storage"):
		ck.warnf(key, "%s is set, but kubernetes.disable names local-storage, so no volumes are made; it is ignored", key)
	case p == layout.StateDir || p == layout.ManifestsDir || strings.HasPrefix(p, layout.ManifestsDir+"/"):
		ck.warnf(key, "%s %q puts volumes among the node's own files; give them a directory of their own, like %s", key, p, DefaultLocalStoragePath)
	case !strings.HasPrefix(p, layout.StateDir+"/"):
		ck.warnf(key, "%s %q is not under %s, the node's STATE partition: the rest of the root file system is in RAM, so the volumes would be lost at every reboot; keep it under %s", key, p, layout.StateDir, layout.StateDir)
	}
}
