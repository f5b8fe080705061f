package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/qemu/container"
)

// nodeGrace is how long a node has for its orderly shutdown (its control
// plane stopped before its datastore) before it is killed.
const nodeGrace = 90 * time.Second

// Down stops and removes the cluster name under root: its processes, its
// network and its state directory. A cluster whose cluster.json is
// missing or damaged loses what follows from its name alone.
func Down(ctx context.Context, stderr io.Writer, root, name string) error {
	dir := clusterDir(root, name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no cluster named %s in %s ('cairn cluster list' shows them)", name, root)
	}
	st, err := loadState(dir)
	if err != nil {
		// Made before cluster.json was written, or damaged: the names
		// follow from the cluster's name; its processes cannot be known.
		fmt.Fprintf(stderr, "cairn cluster down: %v; removing the namespaces and links named after %s (check for its processes yourself)\n", err, name)
		st = &state{Name: name, Network: container.Network{Namespace: namespaceOf(name), HostLink: hostLinkOf(name)}}
		ents, _ := os.ReadDir(filepath.Join(dir, "nodes"))
		for _, e := range ents {
			if ValidNodeID(e.Name()) {
				st.Nodes = append(st.Nodes, nodeState{ID: e.Name()})
			}
		}
	}
	t := time.Now()
	if err := teardown(ctx, stderr, dir, st); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cairn cluster down: cluster %s removed (%.1f s)\n", name, time.Since(t).Seconds())
	return nil
}

// teardown stops what st records (nodes first, then the datastore),
// deletes the network, unmounts anything left under dir or the
// namespaces, and removes dir. It carries on past failures and returns
// them all.
func teardown(ctx context.Context, stderr io.Writer, dir string, st *state) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, n := range st.Nodes {
		if !n.Proc.Alive() {
			continue
		}
		wg.Go(func() {
			t := time.Now()
			err := n.Proc.Stop(syscall.SIGTERM, nodeGrace)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
				return
			}
			fmt.Fprintf(stderr, "cairn cluster down: node %s: stopped (%.1f s)\n", n.Name, time.Since(t).Seconds())
		})
	}
	wg.Wait()
	if s := st.Store; s != nil && s.Proc.Alive() {
		if err := s.Proc.Stop(s.StopSignal(), 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("datastore: %w", err))
		} else {
			fmt.Fprintf(stderr, "cairn cluster down: datastore %s: stopped\n", s.Kind)
		}
	}
	if err := st.Network.Delete(ctx, st.nodeIDs()); err != nil {
		errs = append(errs, err)
	}
	for _, m := range leftoverMounts(dir, st.Network.Namespace) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("%s is kept: run 'cairn cluster down --name %s' again once fixed", dir, st.Name))
		return errors.Join(errs...)
	}
	return os.RemoveAll(dir)
}

// leftoverMounts are this mount namespace's mount points under dir or of
// the cluster's network namespaces, deepest first.
func leftoverMounts(dir, namespace string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	return matchMounts(f, dir, namespace)
}

func matchMounts(r io.Reader, dir, namespace string) []string {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		ns := "/run/netns/" + namespace
		if mp == dir || strings.HasPrefix(mp, dir+"/") || mp == ns || strings.HasPrefix(mp, ns+".") {
			out = append([]string{mp}, out...)
		}
	}
	return out
}
