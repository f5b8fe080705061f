package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

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
	data, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return path, t, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("the cluster token: %w", err)
	}
	t, err := join.Generate()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the cluster token: %w", err)
	}
	return path, t, nil
}

// defaultSeed makes a NoCloud seed that hands the node its token, for a
// run given no config of its own.
func defaultSeed(ctx context.Context, token string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "cairn-run-")
	if err != nil {
		return "", nil, fmt.Errorf("seed: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	iso := filepath.Join(dir, "seed.iso")
	userData := fmt.Sprintf("#cloud-config\n# made by cairn run: the token in the output directory's %s\nkubernetes:\n  token: %q\n", tokenFile, token)
	if err := qemu.MakeSeedISO(ctx, iso, qemu.Seed{UserData: []byte(userData)}); err != nil {
		cleanup()
		return "", nil, err
	}
	return iso, cleanup, nil
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
