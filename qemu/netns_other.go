//go:build !linux

package qemu

import (
	"context"
	"errors"
	"net"
)

var errNoNetns = errors.New("network namespaces exist only on Linux")

// DialContext opens a connection from inside the namespace (Linux only).
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errNoNetns
}

// Listen opens a listening socket inside the namespace (Linux only).
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	return nil, errNoNetns
}
