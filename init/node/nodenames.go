package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/nodeclaim"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/supervise"
)

// Node names belong to the node that claimed them first (nodeclaim, the
// agents' side; this file is the servers'). A kubelet client certificate
// requested with a bootstrap token (the agent token) is approved here,
// not by kube-controller-manager, and only for a name that is free, or
// claimed by the same node secret, and never a server's. A server's
// kubelet never asks: its server mints its certificate from the client
// CA. Renewals (a node's kubelet asking, with its certificate, for its
// own name) are kube-controller-manager's, as before.
//
// What the servers keep of a claim: the Secret kube-system/NAME.node-
// password.cairn (only admins and the servers read kube-system's
// Secrets), holding the node secret's public key, or "server" for a
// server's name, or "reserved" for a node that joined before cairn kept
// claims. Deleting the Node frees its name (the servers delete its record
// within nodeNamesEvery, once it is nameGrace old), and so does deleting
// the record.

// Node-name records: their Secret type and label, and annotations.
const (
	nameRecordType    = "cairn.dev/node-password"
	nameRecordLabel   = "cairn.dev/node-password"
	nodeAnnotation    = "cairn.dev/node"
	claimedAnnotation = "cairn.dev/claimed"
	// nodeNamesMarker (a ConfigMap in kube-system) says the Nodes that
	// were there before cairn kept claims have their names reserved.
	nodeNamesMarker = "cairn-node-names"
)

var (
	// nodeNamesEvery is how often a server tends the records: its own,
	// the names of Nodes that are gone.
	nodeNamesEvery = 2 * time.Minute
	// nameGrace is how long a record stands without its Node: a node
	// registers its Node only after its certificate is approved.
	nameGrace = 15 * time.Minute
)

// maxNameRecords bounds the list of records (a few hundred bytes each).
const maxNameRecords = 16 << 20

// nameRecord is what the servers keep of a name's claim.
type nameRecord struct {
	// key is the public key of the node secret that claimed the name; ""
	// for a server's or a reserved name.
	key      string
	server   bool
	reserved bool
	claimed  time.Time
	// rv is the record's resourceVersion (for a delete or an update).
	rv string
}

// nodeClaim is a kubelet client certificate request that claims a name.
type nodeClaim struct {
	node, key string
}

// kubeletUsages are the usages a kubelet client request may ask for (the
// apiserver's own check for the signer: with or without key
// encipherment).
var kubeletUsages = [][]string{{"client auth", "digital signature"}, {"client auth", "digital signature", "key encipherment"}}

// errNoProof: a request from a bootstrap token without a node secret's
// proof.
var errNoProof = errors.New("carries no proof of a node secret: a kubelet that asked on its own (its certificate lapsed while it ran; restart the node, whose init asks with its node secret), or a node of a cairn older than the servers")

// checkClientCSR says what a pending kubelet client request is to the
// servers: a claim to decide (ours), with err set when it must be denied,
// or not ours (a node renewing its own certificate, which
// kube-controller-manager approves, or someone else's request).
func checkClientCSR(c *csr) (claim nodeClaim, ours bool, err error) {
	if node, ok := strings.CutPrefix(c.Spec.Username, "system:node:"); ok {
		req, err := c.request()
		if err != nil || req.Subject.CommonName == c.Spec.Username {
			return nodeClaim{}, false, nil // a renewal (or not a request kube-controller-manager signs)
		}
		return nodeClaim{}, true, fmt.Errorf("node %s asks for a certificate of %q", node, req.Subject.CommonName)
	}
	if !strings.HasPrefix(c.Spec.Username, "system:bootstrap:") {
		return nodeClaim{}, false, nil
	}
	req, err := c.request()
	if err != nil {
		return nodeClaim{}, true, err
	}
	node, ok := strings.CutPrefix(req.Subject.CommonName, "system:node:")
	if !ok || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) || len(req.Subject.Names) != 2 {
		return nodeClaim{}, true, fmt.Errorf("subject %q is not CN=system:node:NAME,O=system:nodes", req.Subject)
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return nodeClaim{}, true, fmt.Errorf("the request for node %s names hosts, addresses, e-mail addresses or URIs", node)
	}
	usages := slices.Sorted(slices.Values(c.Spec.Usages))
	if !slices.ContainsFunc(kubeletUsages, func(u []string) bool { return slices.Equal(u, usages) }) {
		return nodeClaim{}, true, fmt.Errorf("the request for node %s asks for usages %v", node, c.Spec.Usages)
	}
	if err := nodeclaim.ValidName(node); err != nil {
		return nodeClaim{}, true, err
	}
	key, proof := c.Metadata.Annotations[nodeclaim.KeyAnnotation], c.Metadata.Annotations[nodeclaim.ProofAnnotation]
	if key == "" || proof == "" {
		return nodeClaim{}, true, fmt.Errorf("the request for node %s %w", node, errNoProof)
	}
	if err := nodeclaim.Verify(key, node, req.RawSubjectPublicKeyInfo, proof); err != nil {
		return nodeClaim{}, true, fmt.Errorf("the request for node %s: %w", node, err)
	}
	return nodeClaim{node: node, key: key}, true, nil
}

// claimVerdict decides a claim given the name's record (nil: none) and
// whether the name is a server's (this server's, or a Node labelled
// one): first says the name is free and the claim makes it this
// secret's; an error says why the claim is refused.
func claimVerdict(claim nodeClaim, rec *nameRecord, server bool) (first bool, err error) {
	n := claim.node
	free := fmt.Sprintf("delete the Node %s (or the Secret kube-system/%s%s) to give the name to this machine", n, n, nodeclaim.RecordSuffix)
	switch {
	case server || rec != nil && rec.server:
		return false, fmt.Errorf("%s is a server's name, which the agent token never gets", n)
	case rec == nil:
		return true, nil
	case rec.reserved:
		return false, fmt.Errorf("node %s joined before cairn kept node secrets and keeps its name: %s", n, free)
	case rec.key != claim.key:
		return false, fmt.Errorf("the name %s belongs to another node secret, the one that joined with it first (a machine that lost its STATE, or another machine given the same name): %s", n, free)
	}
	return false, nil
}

// errNotYet wraps what keeps a claim undecided for now (the record could
// not be read or written): the next pass tries again.
type errNotYet struct{ err error }

func (e errNotYet) Error() string { return e.err.Error() }

// claimName checks claim against its record and, when the name is free,
// records it as the claim's, create-if-absent (two servers, or two
// machines, at once: the first record stands). nil: approve it.
func (s *server) claimName(ctx context.Context, api *kube.Client, claim nodeClaim, view *clusterView) error {
	server := claim.node == kubeletName(nodeName(s.o)) || view.nodes[claim.node].server
	for range 2 {
		rec, err := getNameRecord(ctx, api, claim.node)
		if err != nil {
			return errNotYet{err}
		}
		first, err := claimVerdict(claim, rec, server)
		if err != nil || !first {
			return err
		}
		err = api.Do(ctx, http.MethodPost, kubeSystemSecrets, nameRecordObject(claim.node, nameRecord{key: claim.key}), nil)
		if kube.IsStatus(err, http.StatusConflict) {
			continue // recorded meanwhile: read it
		}
		if err != nil {
			return errNotYet{fmt.Errorf("recording the name %s: %w", claim.node, err)}
		}
		return nil
	}
	return errNotYet{fmt.Errorf("the record of the name %s keeps changing", claim.node)}
}

// decideClientRequests decides the pending kubelet client requests that
// claim a name, saying once per request why one is denied. view is read
// when first needed (shared with the serving requests' pass).
func (s *server) decideClientRequests(ctx context.Context, api *kube.Client, said map[string]bool, view **clusterView) {
	for _, item := range pendingCSRs(ctx, api, nodeclaim.Signer) {
		c, raw := item.c, item.raw
		claim, ours, err := checkClientCSR(c)
		if !ours {
			continue
		}
		if err == nil {
			if *view == nil {
				v, verr := readClusterView(ctx, api)
				if verr != nil {
					return // the next pass tries again
				}
				*view = v
			}
			err = s.claimName(ctx, api, claim, *view)
		}
		var notYet errNotYet
		if errors.As(err, &notYet) {
			if !said["wait:"+c.Metadata.Name] {
				said["wait:"+c.Metadata.Name] = true
				s.o.Printf("node: not deciding kubelet client certificate request %s yet: %v; trying again", c.Metadata.Name, err)
			}
			continue
		}
		if err != nil {
			if !said[c.Metadata.Name] {
				said[c.Metadata.Name] = true
				s.o.Printf("node: denying kubelet client certificate request %s: %v", c.Metadata.Name, err)
			}
			if err := decide(ctx, api, raw, c.Metadata.Name, "Denied", "CairnNodeNameDeny", err.Error()); err != nil && ctx.Err() == nil {
				s.o.Printf("node: denying certificate request %s: %v", c.Metadata.Name, err)
			}
			continue
		}
		if err := decide(ctx, api, raw, c.Metadata.Name, "Approved", "CairnNodeNameApprove", "the name is this node secret's, approved by a cairn server"); err != nil && ctx.Err() == nil {
			s.o.Printf("node: approving certificate request %s: %v", c.Metadata.Name, err)
		}
	}
}

const kubeSystemSecrets = "/api/v1/namespaces/kube-system/secrets"

// nameRecordObject is the Secret holding rec for node.
func nameRecordObject(node string, rec nameRecord) map[string]any {
	data := map[string][]byte{}
	switch {
	case rec.server:
		data["server"] = []byte("true")
	case rec.reserved:
		data["reserved"] = []byte("true")
	default:
		data["node-key"] = []byte(rec.key)
	}
	m := meta(node+nodeclaim.RecordSuffix, "kube-system")
	m["labels"] = map[string]string{"app.kubernetes.io/managed-by": "cairn", nameRecordLabel: "true"}
	m["annotations"] = map[string]string{nodeAnnotation: node, claimedAnnotation: time.Now().UTC().Format(time.RFC3339)}
	if rec.rv != "" {
		m["resourceVersion"] = rec.rv
	}
	return map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": m, "type": nameRecordType, "data": data}
}

// recordJSON is the part of a record's Secret the servers read.
type recordJSON struct {
	Metadata struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data map[string][]byte `json:"data"`
}

func (r recordJSON) record() *nameRecord {
	rec := &nameRecord{key: string(r.Data["node-key"]), server: string(r.Data["server"]) == "true",
		reserved: string(r.Data["reserved"]) == "true", rv: r.Metadata.ResourceVersion}
	rec.claimed, _ = time.Parse(time.RFC3339, r.Metadata.Annotations[claimedAnnotation])
	return rec
}

// getNameRecord reads the record of node (nil: none).
func getNameRecord(ctx context.Context, api *kube.Client, node string) (*nameRecord, error) {
	var r recordJSON
	err := api.Get(ctx, kubeSystemSecrets+"/"+node+nodeclaim.RecordSuffix, &r)
	switch {
	case kube.IsStatus(err, http.StatusNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the record of the name %s: %w", node, err)
	}
	return r.record(), nil
}

// kubeletName is the Node name a kubelet given name registers (it trims
// and lower-cases --hostname-override).
func kubeletName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// kubeletClientCert is, on a server, how its kubelet gets its client
// certificate: minted from the cluster's client CA (a year, as
// kube-controller-manager signs; the kubelet renews it), never asked for
// with the agent token.
func kubeletClientCert(c pki.Cluster, node string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		p, err := c.Issue(pki.ClientCA, pki.Leaf{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}, Client: true}, time.Now())
		if err != nil {
			return nil, fmt.Errorf("minting the kubelet's client certificate: %w", err)
		}
		return append(append([]byte(nil), p.Cert...), p.Key...), nil
	}
}

// keepNodeNames tends the name records once ready is closed (the cluster's
// objects are published), every nodeNamesEvery, saying once what fails.
func (s *server) keepNodeNames(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ready:
	case <-ctx.Done():
		return
	}
	api, err := s.admin.client(kube.Options{})
	if err != nil {
		s.o.Printf("node: %v", err)
		return
	}
	said := ""
	for {
		if err := s.tendNodeNames(ctx, api); err != nil && ctx.Err() == nil && err.Error() != said {
			said = err.Error()
			s.o.Printf("node: keeping node names: %v; trying again in %s", err, nodeNamesEvery)
		} else if err == nil {
			said = ""
		}
		if !supervise.Sleep(ctx, nodeNamesEvery) {
			return
		}
	}
}

// tendNodeNames makes this server's name a server's, reserves once the
// names of the Nodes that joined before cairn kept claims, and deletes
// the records of names whose Node is gone.
func (s *server) tendNodeNames(ctx context.Context, api *kube.Client) error {
	self := kubeletName(nodeName(s.o))
	if err := s.ownName(ctx, api, self); err != nil {
		return err
	}
	view, err := readClusterView(ctx, api)
	if err != nil {
		return err
	}
	var list struct {
		Items []recordJSON `json:"items"`
	}
	q := "?labelSelector=" + url.QueryEscape(nameRecordLabel+"=true")
	if err := api.WithMaxReply(maxNameRecords).Get(ctx, kubeSystemSecrets+q, &list); err != nil {
		return fmt.Errorf("listing the name records: %w", err)
	}
	records := map[string]*nameRecord{}
	for _, r := range list.Items {
		if node, ok := strings.CutSuffix(r.Metadata.Name, nodeclaim.RecordSuffix); ok {
			records[node] = r.record()
		}
	}
	if err := s.reserveOldNames(ctx, api, view, records, self); err != nil {
		return err
	}
	for _, node := range slices.Sorted(maps.Keys(records)) {
		rec := records[node]
		if _, ok := view.nodes[node]; ok || node == self || time.Since(rec.claimed) < nameGrace {
			continue
		}
		del := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": map[string]string{"resourceVersion": rec.rv}}
		err := api.Do(ctx, http.MethodDelete, kubeSystemSecrets+"/"+node+nodeclaim.RecordSuffix, del, nil)
		switch {
		case err == nil:
			s.o.Printf("node: the name %s is free again: its Node is gone (deleted Secret kube-system/%s%s)", node, node, nodeclaim.RecordSuffix)
		case kube.IsStatus(err, http.StatusNotFound), kube.IsStatus(err, http.StatusConflict):
			// another server freed it, or it was claimed again
		default:
			return fmt.Errorf("freeing the name %s: %w", node, err)
		}
	}
	return nil
}

// ownName makes self's record a server's, saying so when a node secret
// had claimed the name through the agent token.
func (s *server) ownName(ctx context.Context, api *kube.Client, self string) error {
	rec, err := getNameRecord(ctx, api, self)
	switch {
	case err != nil:
		return err
	case rec == nil:
		err = api.Do(ctx, http.MethodPost, kubeSystemSecrets, nameRecordObject(self, nameRecord{server: true}), nil)
	case rec.server:
		return nil
	default:
		err = api.Do(ctx, http.MethodPut, kubeSystemSecrets+"/"+self+nodeclaim.RecordSuffix, nameRecordObject(self, nameRecord{server: true, rv: rec.rv}), nil)
		if err == nil && rec.key != "" {
			s.o.Printf("node: this server takes its name %s from the node secret that claimed it through the agent token; if no machine should have joined as %s, rotate the agent token (cairn token rotate --agent): its kubelet certificate is valid until it lapses", self, self)
		}
	}
	if err != nil && !kube.IsStatus(err, http.StatusConflict) {
		return fmt.Errorf("recording %s as a server's name: %w", self, err)
	}
	return nil
}

// reserveOldNames, once per cluster (until the marker ConfigMap exists),
// records as reserved the names of the Nodes, servers' aside, that have
// no record: they joined before cairn kept claims, and the agent token
// must not take their names.
func (s *server) reserveOldNames(ctx context.Context, api *kube.Client, view *clusterView, records map[string]*nameRecord, self string) error {
	const markerPath = "/api/v1/namespaces/kube-system/configmaps/" + nodeNamesMarker
	err := api.Get(ctx, markerPath, nil)
	if err == nil {
		return nil
	}
	if !kube.IsStatus(err, http.StatusNotFound) {
		return fmt.Errorf("reading ConfigMap kube-system/%s: %w", nodeNamesMarker, err)
	}
	var reserved []string
	for _, node := range slices.Sorted(maps.Keys(view.nodes)) {
		if records[node] != nil || view.nodes[node].server || node == self || nodeclaim.ValidName(node) != nil {
			continue
		}
		err := api.Do(ctx, http.MethodPost, kubeSystemSecrets, nameRecordObject(node, nameRecord{reserved: true}), nil)
		if err != nil && !kube.IsStatus(err, http.StatusConflict) {
			return fmt.Errorf("reserving the name %s: %w", node, err)
		}
		if err == nil {
			reserved = append(reserved, node)
		}
	}
	marker := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(nodeNamesMarker, "kube-system"),
		"data": map[string]string{"since": time.Now().UTC().Format(time.RFC3339),
			"about": "node names are claimed with node secrets (Secrets kube-system/NAME" + nodeclaim.RecordSuffix + "); the Nodes there before were reserved"}}
	if err := api.Do(ctx, http.MethodPost, "/api/v1/namespaces/kube-system/configmaps", marker, nil); err != nil && !kube.IsStatus(err, http.StatusConflict) {
		return fmt.Errorf("creating ConfigMap kube-system/%s: %w", nodeNamesMarker, err)
	}
	if len(reserved) > 0 {
		names := strings.Join(reserved[:min(len(reserved), 10)], ", ")
		if len(reserved) > 10 {
			names += fmt.Sprintf(" and %d more", len(reserved)-10)
		}
		s.o.Printf("node: %d nodes joined before cairn kept node secrets (%s): their names stay theirs; one that must join afresh (its STATE lost, its certificate lapsed) needs its Node deleted first", len(reserved), names)
	}
	return nil
}
