package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
	"github.com/cairn-os/cairn/qemu/container"
)

// startVM makes the node's seed and TAP device and starts `cairn cluster
// vm`, which runs the node's QEMU (RunVM) until it is told to stop.
func startVM(ctx context.Context, dir string, st *state, n *nodeState, o Options, cfg []byte) (container.Proc, error) {
	ndir := filepath.Join(dir, "nodes", n.ID)
	if err := qemu.MakeSeedISO(ctx, filepath.Join(ndir, "seed.iso"), qemu.Seed{UserData: cfg}); err != nil {
		return container.Proc{}, err
	}
	if _, err := st.Network.AddTAP(ctx, n.ID); err != nil {
		return container.Proc{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return container.Proc{}, err
	}
	cmd := exec.Command(self, "cluster", "vm", "--state-dir", filepath.Dir(dir), "--name", st.Name, "--node", n.ID,
		"--memory", fmt.Sprint(o.Memory), "--smp", fmt.Sprint(o.SMP))
	cmd.Dir = "/"
	return container.StartDetached(cmd, filepath.Join(ndir, "vm.log"))
}

// RunVM runs node id of the cluster name under root in QEMU, which dies
// with this process, until the machine stops or this process gets SIGTERM
// or SIGINT: then it presses the power button and waits for the orderly
// shutdown (75 s, then kills the machine).
func RunVM(ctx context.Context, root, name, id string, memory, smp int) error {
	dir := clusterDir(root, name)
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	var node *nodeState
	for i := range st.Nodes {
		if st.Nodes[i].ID == id {
			node = &st.Nodes[i]
		}
	}
	if node == nil {
		return fmt.Errorf("cluster %s has no node %s", name, id)
	}
	b, err := boards.Load(st.Board)
	if err != nil {
		return err
	}
	art, err := qemu.LoadArtifacts(st.Image)
	if err != nil {
		return err
	}
	a := node.Addr.As4()
	sub := st.Network.Subnet.Addr().As4()
	m, err := qemu.Start(context.Background(), qemu.Config{
		Name: node.Name, Board: b, Artifacts: art, Memory: memory, SMP: smp,
		ExtraCmdline: strings.Fields(st.Cmdline),
		Seed:         filepath.Join(dir, "nodes", id, "seed.iso"),
		NICs:         []qemu.NIC{{TAP: "t-" + id, MAC: fmt.Sprintf("52:54:00:c4:%02x:%02x", sub[2], a[3])}},
		Netns:        st.Network.Netns(),
		ConsoleLog:   node.Log,
	})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- m.Wait(context.Background()) }()
	select {
	case err := <-exited:
		return err
	case <-sig:
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m.Powerdown(pctx)
	cancel()
	select {
	case <-exited:
	case <-time.After(75 * time.Second):
		m.Kill()
	}
	return nil
}
