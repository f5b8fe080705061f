package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// tokenFile is where cairn keeps the token of the cluster an output
// directory boots, beside the image, mode 0600.
const tokenFile = "token"

// ensureToken returns the cluster token of dir's image, generating it into
// dir/token (0600) on first use, so `cairn kubeconfig` can reach the node
// without anyone logging in. The token never reaches a command line.
func ensureToken(dir string) (path, token string, err error) {
	path = filepath.Join(dir, tokenFile)
	t, err := readTokenFile(path)
	if err == nil && t != "" {
		return path, t, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("the cluster token: %w", err)
	}
	if t, err = join.Generate(); err != nil {
		return "", "", err
	}
	if err := files.WriteSecret(path, []byte(t+"\n")); err != nil {
		return "", "", fmt.Errorf("writing the cluster token: %w", err)
	}
	return path, t, nil
}

// tokenSeed makes a NoCloud seed that hands the node its token, for a
// run given no config of its own.
func tokenSeed(ctx context.Context, token string) (string, func(), error) {
	userData, err := (&config.Config{Kubernetes: config.Kubernetes{Token: token}}).Marshal()
	if err != nil {
		return "", nil, err
	}
	return seedISO(ctx, userData)
}

// apiForward forwards a host port to the guest's apiserver: 6443 when it
// is free, else any free port.
func apiForward(stderr io.Writer) qemu.Forward {
	port := 6443
	if ln, err := net.Listen("tcp", "127.0.0.1:6443"); err == nil {
		ln.Close()
	} else if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		fmt.Fprintf(stderr, "cairn run: port 6443 is taken here; the node's apiserver is forwarded to 127.0.0.1:%d\n", port)
	}
	return qemu.Forward{HostPort: port, GuestPort: 6443}
}
