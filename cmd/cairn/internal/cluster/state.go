package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/qemu/container"
)

// A local cluster's state lives in one directory per cluster under the
// state root (/var/lib/cairn-cluster, --state-dir): cluster.json says what
// `cairn cluster up` made (the names of the network namespaces and links,
// every process with its start time) so that `down` can remove it all and
// `list` can tell what still runs. Beside it: token, datastore-password
// and kubeconfig (0600), system.sqfs and init (the system image and its
// init, container platform), nodes/ID/ (config, console.log, and disk/,
// the node directory it boots from), datastore/ and datastore.log.

const (
	stateFile    = "cluster.json"
	stateVersion = 1
	maxStateSize = 1 << 20
)

// state is cluster.json.
type state struct {
	Version   int               `json:"version"`
	Name      string            `json:"name"`
	Created   time.Time         `json:"created"`
	Platform  string            `json:"platform"`
	Datastore string            `json:"datastore"`
	Board     string            `json:"board"`
	Image     string            `json:"image"`
	Network   container.Network `json:"network"`
	VIP       netip.Addr        `json:"vip,omitzero"`
	// Cmdline is every node's kernel command line ("cairn.debug" or
	// none); a container node's adds containerCmdline.
	Cmdline string `json:"cmdline"`
	// Store is the datastore server; nil for the embedded etcd.
	Store *storeState `json:"store,omitempty"`
	Nodes []nodeState `json:"nodes"`
	// Ready is when every node was ready (zero until then).
	Ready time.Time `json:"ready,omitzero"`
}

type storeState struct {
	container.Datastore
	Proc container.Proc `json:"proc"`
}

type nodeState struct {
	// ID is "s1", "a2": the node's role and number; Name is the cluster's
	// name and the ID, the node's host name.
	ID   string     `json:"id"`
	Name string     `json:"name"`
	Role string     `json:"role"`
	Addr netip.Addr `json:"addr"`
	// Proc is the container platform's init launcher, or the process
	// that runs the node's QEMU.
	Proc container.Proc `json:"proc"`
	Log  string         `json:"log"`
	// Platform is "qemu" for a VM in a container-platform cluster; empty,
	// the cluster's.
	Platform string `json:"platform,omitempty"`
}

// platformOf is the platform node n runs on.
func (st *state) platformOf(n *nodeState) string {
	if n.Platform != "" {
		return n.Platform
	}
	return st.Platform
}

// containerCmdline is what the container platform's init reads on its
// command line besides the nodes' common one (state.Cmdline).
const containerCmdline = "cairn.platform=container"

// namespaceOf is the cluster's network namespace.
func namespaceOf(name string) string { return "cairn-cluster-" + name }

// hostLinkOf is the host's end of the veth into the cluster's bridge: a
// hash of the name, which may be longer than an interface name allows.
func hostLinkOf(name string) string {
	h := sha256.Sum256([]byte(name))
	return "cairn" + hex.EncodeToString(h[:4])
}

func clusterDir(root, name string) string { return filepath.Join(root, name) }

// parseState reads cluster.json, strictly and bounded, and checks that
// what it names is what cairn would have made for a cluster of that name:
// down deletes namespaces and signals processes it names.
func parseState(data []byte) (*state, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", stateFile, maxStateSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st state
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: data after the document", stateFile)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: version %d; this cairn reads version %d", stateFile, st.Version, stateVersion)
	}
	if err := CheckName(st.Name); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	if st.Network.Namespace != namespaceOf(st.Name) {
		return nil, fmt.Errorf("%s: network namespace %q is not the cluster's (%s)", stateFile, st.Network.Namespace, namespaceOf(st.Name))
	}
	if l := st.Network.HostLink; l != "" && l != hostLinkOf(st.Name) {
		return nil, fmt.Errorf("%s: host link %q is not the cluster's (%s)", stateFile, l, hostLinkOf(st.Name))
	}
	if !slices.Contains(Platforms, st.Platform) {
		return nil, fmt.Errorf("%s: platform %q", stateFile, st.Platform)
	}
	if !slices.Contains(Datastores, st.Datastore) {
		return nil, fmt.Errorf("%s: datastore %q", stateFile, st.Datastore)
	}
	if len(st.Cmdline) > 4096 {
		return nil, fmt.Errorf("%s: a command line of %d bytes", stateFile, len(st.Cmdline))
	}
	if len(st.Nodes) > MaxServers+MaxAgents {
		return nil, fmt.Errorf("%s: %d nodes; at most %d", stateFile, len(st.Nodes), MaxServers+MaxAgents)
	}
	seen := map[string]bool{}
	for _, n := range st.Nodes {
		if !ValidNodeID(n.ID) || seen[n.ID] {
			return nil, fmt.Errorf("%s: node id %q is not s1..s%d or a1..a%d, or repeated", stateFile, n.ID, MaxServers, MaxAgents)
		}
		seen[n.ID] = true
		if n.Name != st.Name+"-"+n.ID {
			return nil, fmt.Errorf("%s: node %s is named %q; want %s-%s", stateFile, n.ID, n.Name, st.Name, n.ID)
		}
		if want := map[byte]string{'s': "server", 'a': "agent"}[n.ID[0]]; n.Role != want {
			return nil, fmt.Errorf("%s: node %s has role %q; want %s", stateFile, n.ID, n.Role, want)
		}
		if n.Proc.PID < 0 {
			return nil, fmt.Errorf("%s: node %s: process id %d", stateFile, n.ID, n.Proc.PID)
		}
		if n.Platform != "" && (n.Platform != "qemu" || st.Platform != "container" || n.Role != "agent") {
			return nil, fmt.Errorf("%s: node %s: platform %q (a VM agent of a container-platform cluster is \"qemu\"; otherwise none)", stateFile, n.ID, n.Platform)
		}
	}
	if st.Store != nil && st.Store.Proc.PID < 0 {
		return nil, fmt.Errorf("%s: datastore process id %d", stateFile, st.Store.Proc.PID)
	}
	return &st, nil
}

func loadState(dir string) (*state, error) {
	data, err := files.Read(filepath.Join(dir, stateFile), maxStateSize)
	if err != nil {
		return nil, err
	}
	st, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if filepath.Base(dir) != st.Name {
		return nil, fmt.Errorf("%s: holds the cluster %q", dir, st.Name)
	}
	return st, nil
}

// save writes cluster.json atomically.
func (st *state) save(dir string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return files.WriteSecret(filepath.Join(dir, stateFile), append(data, '\n'))
}

// nodeIDs are the node IDs, for Network.Delete.
func (st *state) nodeIDs() []string {
	var ids []string
	for _, n := range st.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}
