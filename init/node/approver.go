package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// approveEvery is how often a server looks for kubelet serving
// certificate requests; kube-controller-manager approves the client ones
// itself, but leaves serving ones to the cluster's operator.
var approveEvery = 3 * time.Second

// csr is the part of a CertificateSigningRequest the approver reads.
type csr struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Request    []byte   `json:"request"`
		SignerName string   `json:"signerName"`
		Username   string   `json:"username"`
		Groups     []string `json:"groups"`
		Usages     []string `json:"usages"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type string `json:"type"`
		} `json:"conditions"`
	} `json:"status"`
}

// approveServing approves, on every server, the kubelet serving
// certificate requests whose names are the requesting node's own: its
// name and the addresses its Node object reports. Any other request is
// left for a person, with one console line.
func (s *server) approveServing(ctx context.Context, api *kube.Client) {
	refused := map[string]bool{}
	for supervise.Sleep(ctx, approveEvery) {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := api.Get(ctx, "/apis/certificates.k8s.io/v1/certificatesigningrequests?fieldSelector=spec.signerName%3Dkubernetes.io%2Fkubelet-serving", &list); err != nil {
			continue
		}
		for _, raw := range list.Items {
			var c csr
			if json.Unmarshal(raw, &c) != nil || len(c.Status.Conditions) > 0 || refused[c.Metadata.Name] {
				continue
			}
			if err := checkServingCSR(ctx, api, &c); err != nil {
				refused[c.Metadata.Name] = true
				s.o.Printf("node: not approving certificate request %s: %v", c.Metadata.Name, err)
				continue
			}
			if err := approve(ctx, api, raw, c.Metadata.Name); err != nil && ctx.Err() == nil {
				s.o.Printf("node: approving certificate request %s: %v", c.Metadata.Name, err)
			}
		}
		if len(refused) > 1000 {
			clear(refused)
		}
	}
}

// checkServingCSR checks that a serving request comes from a node and
// names only that node and its addresses.
func checkServingCSR(ctx context.Context, api *kube.Client, c *csr) error {
	node, ok := strings.CutPrefix(c.Spec.Username, "system:node:")
	if !ok || node == "" || !slices.Contains(c.Spec.Groups, "system:nodes") {
		return fmt.Errorf("requested by %q, not a node", c.Spec.Username)
	}
	for _, u := range c.Spec.Usages {
		if u != "digital signature" && u != "key encipherment" && u != "server auth" {
			return fmt.Errorf("asks for usage %q", u)
		}
	}
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil {
		return fmt.Errorf("the request is not PEM")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("the request: %w", err)
	}
	if req.Subject.CommonName != c.Spec.Username || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %q is not %s in system:nodes", req.Subject, c.Spec.Username)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return fmt.Errorf("names e-mail addresses or URIs")
	}
	for _, d := range req.DNSNames {
		if d != node {
			return fmt.Errorf("names %q, not the node's name %s", d, node)
		}
	}
	var n struct {
		Status struct {
			Addresses []struct {
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	}
	if err := api.Get(ctx, "/api/v1/nodes/"+node, &n); err != nil {
		return fmt.Errorf("reading node %s: %w", node, err)
	}
	var own []string
	for _, a := range n.Status.Addresses {
		own = append(own, a.Address)
	}
	for _, ip := range req.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		if !slices.Contains(own, a.Unmap().String()) {
			return fmt.Errorf("names %s, not an address of node %s", a, node)
		}
	}
	return nil
}

// approve adds the Approved condition to a request.
func approve(ctx context.Context, api *kube.Client, raw json.RawMessage, name string) error {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	st, _ := obj["status"].(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	conds, _ := st["conditions"].([]any)
	st["conditions"] = append(conds, map[string]any{
		"type": "Approved", "status": "True", "reason": "CairnServingApprove",
		"message": "the node's own name and addresses, approved by a cairn server",
	})
	obj["status"] = st
	err := api.Do(ctx, http.MethodPut, "/apis/certificates.k8s.io/v1/certificatesigningrequests/"+name+"/approval", obj, nil)
	if kube.IsStatus(err, http.StatusConflict) {
		return nil // another server approved it first
	}
	return err
}
