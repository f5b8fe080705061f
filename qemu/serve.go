package qemu

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
)

// ServeFile serves the file at path over HTTP on this machine's loopback,
// which a guest on QEMU's user network reaches as HostAddr. The file is
// read at every request, so an edit shows at the guest's next try. It
// returns the URL the guest fetches it from and stop, which ends serving.
func ServeFile(path string) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("serving %s over HTTP: %w", path, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path)
	})}
	go srv.Serve(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("http://%s:%d/%s", HostAddr, port, filepath.Base(path)), func() { srv.Close() }, nil
}
