package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/cairn-os/cairn/qemu/container"
)

// List prints every cluster under root and its nodes, running or not.
func List(stdout io.Writer, root string) error {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(stdout, "no clusters")
		return nil
	}
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || !nameRe.MatchString(e.Name()) {
			continue
		}
		if n > 0 {
			fmt.Fprintln(stdout)
		}
		n++
		dir := filepath.Join(root, e.Name())
		st, err := loadState(dir)
		if err != nil {
			fmt.Fprintf(stdout, "%s: unreadable (%v); 'cairn cluster down --name %s' removes it\n", e.Name(), err, e.Name())
			continue
		}
		ready := "not ready"
		if !st.Ready.IsZero() {
			ready = "ready since " + st.Ready.Local().Format("2006-01-02 15:04:05")
		}
		vip := ""
		if st.VIP.IsValid() {
			vip = ", vip " + st.VIP.String()
		}
		fmt.Fprintf(stdout, "%s: %s, %s datastore, %s%s, %s; kubeconfig %s\n", st.Name, st.Platform, st.Datastore, st.Network.Subnet, vip, ready, filepath.Join(dir, "kubeconfig"))
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		if s := st.Store; s != nil {
			fmt.Fprintf(w, "  %s\tdatastore\t%s\t%s\n", s.Kind, s.Addr, procState(s.Proc))
		}
		for _, node := range st.Nodes {
			role := node.Role
			if node.Platform != "" {
				role += " (" + node.Platform + ")" // a VM among containers
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", node.Name, role, node.Addr, procState(node.Proc))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no clusters")
	}
	return nil
}

func procState(p container.Proc) string {
	switch {
	case p.PID == 0:
		return "not started"
	case p.Alive():
		return fmt.Sprintf("running (pid %d)", p.PID)
	}
	return fmt.Sprintf("stopped (was pid %d)", p.PID)
}
