package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/kube"
)

// Bounds of the credentials cairn reads: an admin kubeconfig (config/kube
// refuses a larger one), a file holding one cluster token.
const (
	maxKubeconfig = 1 << 20
	maxTokenFile  = 4096
)

// adminKubeconfig reads the admin kubeconfig the --kubeconfig flag names,
// or $KUBECONFIG: what `cairn upgrade` talks to a cluster with.
func adminKubeconfig(flag string) (*kube.Credentials, error) {
	path := flag
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		return nil, usageErrorf("--kubeconfig is required (or set $KUBECONFIG): an admin kubeconfig, as 'cairn kubeconfig' writes")
	}
	data, err := files.Read(path, maxKubeconfig)
	if err != nil {
		return nil, err
	}
	admin, err := kube.ParseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !strings.HasPrefix(admin.Server, "https://") {
		return nil, fmt.Errorf("%s: the server %q is not an https:// URL", path, admin.Server)
	}
	return admin, nil
}

// readTokenFile reads the cluster token held in the file at path.
func readTokenFile(path string) (string, error) {
	data, err := files.Read(path, maxTokenFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}
