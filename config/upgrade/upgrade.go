// Package upgrade is the contract of a rolling upgrade between the CLI
// (`cairn upgrade`), the image builder (the update bundle it writes) and the
// init of every node (which acts on the request): the Upgrade object kept
// in the cluster, the bundle's manifest, and the names both sides use.
package upgrade

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/files"
)

// The Upgrade custom resource, in Namespace. Servers install its
// definition (CRD) at start; `cairn upgrade` creates one, every node's init
// acts on it and writes its progress into its status.
const (
	Namespace  = "cairn-system"
	Group      = "cairn.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	Kind       = "Upgrade"
	Plural     = "upgrades"
)

// Path is the API path of the upgrades in Namespace, or of the one named
// name when name is not empty.
func Path(name string) string {
	p := "/apis/" + APIVersion + "/namespaces/" + Namespace + "/" + Plural
	if name != "" {
		p += "/" + name
	}
	return p
}

// The update bundle is what `cairn build -format update` writes into
// DIR/update/ and what a node needs to fill its other slot: the system
// image, the kernel and the stage-1 initramfs, described by BundleFile.
const (
	BundleDir  = "update"
	BundleFile = "update.json"
	SystemFile = "system.sqfs"
	KernelFile = "vmlinuz"
	InitrdFile = "initrd.img"
)

// BundleFiles are the files of a bundle, in the order a node fetches them.
var BundleFiles = []string{SystemFile, KernelFile, InitrdFile}

// BlobPort is where every server's init serves the bundles' files it
// holds (HTTPS, GET /cairn/v1/blobs/SHA256 for a node presenting a
// certificate of the cluster's client CA) and accepts them (PUT, from an
// admin only, see SignUpload; only files that an Upgrade not yet ended
// names, checked against sha256 and size while they arrive). `cairn
// upgrade --image DIR` uploads to it directly, else through the
// apiserver's node proxy:
// /api/v1/nodes/https:NODE:6446/proxy/cairn/v1/blobs/SHA256.
const BlobPort = 6446

// ServerLabel marks the Node objects of servers (as kubeadm and k3s do):
// they hold the bundles' files, and the CLI upgrades them first.
const ServerLabel = "node-role.kubernetes.io/control-plane"

// BlobPath is the path of a file by its sha256 on BlobPort.
func BlobPath(sha256 string) string { return "/cairn/v1/blobs/" + sha256 }

// Node annotations the init keeps on its Node object.
const (
	// VersionAnnotation is the running system's cairn version.
	VersionAnnotation = "cairn.dev/version"
	// SlotAnnotation is the slot it runs from (a or b).
	SlotAnnotation = "cairn.dev/slot"
	// ComponentsAnnotation is the build key of its cairn-node (the
	// components' versions and sources), from components.json.
	ComponentsAnnotation = "cairn.dev/components"
)

// Bundle is update.json: one board's system, built by one cairn build.
type Bundle struct {
	Board   string `json:"board"`
	Arch    string `json:"arch"`
	Version string `json:"version"`
	// Epoch is the build's time stamp (Unix seconds), the boot loader
	// entry's version.
	Epoch int64 `json:"epoch"`
	// Cmdline is the kernel command line of a disk boot, without the
	// slot parameter (cairn.slot=), which the node adds.
	Cmdline string `json:"cmdline"`
	Files   []File `json:"files"`
}

// File is one file of a bundle.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// MaxBundleFile bounds a bundle's file: a system image larger than this
// fits no slot.
const MaxBundleFile = 4 << 30

// MaxManifest bounds update.json and an Upgrade object as read.
const MaxManifest = 1 << 20

var (
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	safeWord  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
)

// Check says what is wrong with a bundle manifest, naming the field.
func (b *Bundle) Check() error {
	var errs []error
	if !safeWord.MatchString(b.Board) {
		errs = append(errs, fmt.Errorf("board %q is not a board name", b.Board))
	}
	if b.Arch != "amd64" && b.Arch != "arm64" {
		errs = append(errs, fmt.Errorf("arch %q is not amd64 or arm64", b.Arch))
	}
	if !safeWord.MatchString(b.Version) {
		errs = append(errs, fmt.Errorf("version %q is empty or has characters other than letters, digits and ._+-", b.Version))
	}
	if strings.ContainsAny(b.Cmdline, "\n\r\x00") || len(b.Cmdline) > 4096 {
		errs = append(errs, errors.New("cmdline has a line break or is over 4096 bytes"))
	}
	if strings.Contains(b.Cmdline, "cairn.slot=") {
		errs = append(errs, errors.New("cmdline names a slot (cairn.slot=); the node adds its own"))
	}
	seen := map[string]bool{}
	for i, f := range b.Files {
		switch {
		case !isBundleFile(f.Name):
			errs = append(errs, fmt.Errorf("files[%d].name %q is not one of %s", i, f.Name, strings.Join(BundleFiles, ", ")))
		case seen[f.Name]:
			errs = append(errs, fmt.Errorf("files[%d].name %q appears twice", i, f.Name))
		}
		seen[f.Name] = true
		if !hexSHA256.MatchString(f.SHA256) {
			errs = append(errs, fmt.Errorf("files[%d].sha256 %q is not 64 lower-case hex digits", i, f.SHA256))
		}
		if f.Size <= 0 || f.Size > MaxBundleFile {
			errs = append(errs, fmt.Errorf("files[%d].size %d is not between 1 and %d", i, f.Size, int64(MaxBundleFile)))
		}
	}
	for _, n := range BundleFiles {
		if !seen[n] {
			errs = append(errs, fmt.Errorf("files has no %s", n))
		}
	}
	return errors.Join(errs...)
}

func isBundleFile(name string) bool {
	for _, n := range BundleFiles {
		if n == name {
			return true
		}
	}
	return false
}

// File returns the bundle's file called name.
func (b *Bundle) File(name string) (File, bool) {
	for _, f := range b.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// Upgrade is the custom resource.
type Upgrade struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Status     Status   `json:"status,omitempty"`
}

// Metadata is the part of an object's metadata the upgrade reads.
type Metadata struct {
	Name              string `json:"name"`
	Namespace         string `json:"namespace,omitempty"`
	UID               string `json:"uid,omitempty"`
	ResourceVersion   string `json:"resourceVersion,omitempty"`
	CreationTimestamp string `json:"creationTimestamp,omitempty"`
}

// Spec is what the user asked for.
type Spec struct {
	// Images are the bundles to install, one per board; a node installs
	// the one for its board.
	Images []Image `json:"images"`
	// Nodes are the nodes to upgrade, in order.
	Nodes []string `json:"nodes"`
	// MaxUnavailable is how many nodes may be upgrading at once (1).
	MaxUnavailable int `json:"maxUnavailable,omitempty"`
	// DrainTimeout bounds a node's drain ("10m"): a PodDisruptionBudget
	// that never allows an eviction fails the node after it.
	DrainTimeout string `json:"drainTimeout,omitempty"`
	// HealthTimeout bounds the trial boot: the new system must be healthy
	// within it after the node starts it ("15m").
	HealthTimeout string `json:"healthTimeout,omitempty"`
	// Checks are the cluster's own checks a node passes before it keeps
	// the new system.
	Checks []Check `json:"checks,omitempty"`
}

// Image is a bundle and where nodes fetch its files.
type Image struct {
	Bundle
	// Source is a base URL (http or https) holding the bundle's files by
	// name; empty when servers hold them (BlobPort), uploaded by
	// `cairn upgrade --image DIR`.
	Source string `json:"source,omitempty"`
}

// Check is one of the cluster's checks: a Deployment that must be
// Available ("namespace/name").
type Check struct {
	Deployment string `json:"deployment,omitempty"`
}

// Defaults for a Spec's durations.
const (
	DefaultDrainTimeout  = 10 * time.Minute
	DefaultHealthTimeout = 15 * time.Minute
)

// Durations returns the drain and health timeouts, defaulted.
func (s *Spec) Durations() (drain, health time.Duration, err error) {
	parse := func(field, v string, def time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("spec.%s %q is not a positive duration such as 10m", field, v)
		}
		return d, nil
	}
	if drain, err = parse("drainTimeout", s.DrainTimeout, DefaultDrainTimeout); err != nil {
		return
	}
	health, err = parse("healthTimeout", s.HealthTimeout, DefaultHealthTimeout)
	return
}

// ImageFor returns the image for board.
func (s *Spec) ImageFor(board string) (Image, bool) {
	for _, im := range s.Images {
		if im.Board == board {
			return im, true
		}
	}
	return Image{}, false
}

// The phases of an upgrade.
const (
	Running   = "Running"
	Succeeded = "Succeeded"
	Failed    = "Failed"
)

// The phases of one node, in order; Succeeded and Failed end it.
const (
	Pending     = "Pending"
	Draining    = "Draining"
	Fetching    = "Fetching"
	Writing     = "Writing"
	Rebooting   = "Rebooting"
	Verifying   = "Verifying"
	RollingBack = "RollingBack"
)

// Status is where the upgrade stands, written by the nodes.
type Status struct {
	Phase   string       `json:"phase,omitempty"`
	Message string       `json:"message,omitempty"`
	Nodes   []NodeStatus `json:"nodes,omitempty"`
}

// NodeStatus is one node's part.
type NodeStatus struct {
	Name        string `json:"name"`
	Phase       string `json:"phase"`
	Reason      string `json:"reason,omitempty"`
	FromVersion string `json:"fromVersion,omitempty"`
	ToVersion   string `json:"toVersion,omitempty"`
	// Slot is the slot the new system was written to.
	Slot string `json:"slot,omitempty"`
	// Times of each step (RFC 3339), for the report.
	Started  string `json:"started,omitempty"`
	Drained  string `json:"drained,omitempty"`
	Written  string `json:"written,omitempty"`
	Rebooted string `json:"rebooted,omitempty"`
	Finished string `json:"finished,omitempty"`
}

// Node returns the status of the node called name, adding a Pending one.
func (st *Status) Node(name string) *NodeStatus {
	for i := range st.Nodes {
		if st.Nodes[i].Name == name {
			return &st.Nodes[i]
		}
	}
	st.Nodes = append(st.Nodes, NodeStatus{Name: name, Phase: Pending})
	return &st.Nodes[len(st.Nodes)-1]
}

// Done says whether a node's phase ends its part.
func Done(phase string) bool { return phase == Succeeded || phase == Failed }

// InProgress says whether a node's phase is between its start and its end.
func InProgress(phase string) bool { return phase != "" && phase != Pending && !Done(phase) }

// CRD is the Upgrade custom resource definition, as servers apply it.
func CRD() map[string]any {
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{
			"name":   Plural + "." + Group,
			"labels": map[string]string{"app.kubernetes.io/managed-by": "cairn"},
		},
		"spec": map[string]any{
			"group": Group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": Plural, "singular": "upgrade", "kind": Kind, "listKind": Kind + "List"},
			"versions": []any{map[string]any{
				"name": Version, "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec":   map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
						"status": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
					},
				}},
				"additionalPrinterColumns": []any{
					map[string]any{"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
					map[string]any{"name": "Message", "type": "string", "jsonPath": ".status.message"},
					map[string]any{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
				},
			}},
		},
	}
}

// Verify checks that the file at path is f, by its size and sha256; both
// sides of an upgrade check every file with it (the CLI before it
// uploads, a node before it writes a slot).
func (f File) Verify(path string) error {
	sum, n, err := files.SHA256(path, f.Size)
	if err != nil {
		return err
	}
	if n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("%s is not the file the upgrade names: %s of %d bytes, it is %d bytes with sha256 %s", path, f.Name, f.Size, n, sum)
	}
	return nil
}
