package servicelb

import (
	"encoding/json"
	"net/netip"
	"slices"
	"time"
)

// The objects the controller reads, as JSON, with only the fields it
// uses: the init carries no Kubernetes client library.

type objectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
}

// key is the object's namespace/name.
func (m objectMeta) key() string { return m.Namespace + "/" + m.Name }

type service struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Type                  string        `json:"type"`
		LoadBalancerClass     *string       `json:"loadBalancerClass"`
		LoadBalancerIP        string        `json:"loadBalancerIP"`
		Ports                 []servicePort `json:"ports"`
		IPFamilies            []string      `json:"ipFamilies"`
		ExternalTrafficPolicy string        `json:"externalTrafficPolicy"`
	} `json:"spec"`
	Status struct {
		LoadBalancer struct {
			Ingress []ingress `json:"ingress"`
		} `json:"loadBalancer"`
	} `json:"status"`
}

type servicePort struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// ingress is one entry of a Service's status.loadBalancer.ingress.
type ingress struct {
	IP       string `json:"ip,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	IPMode   string `json:"ipMode,omitempty"`
}

// addresses are the IPs of the Service's status, in order.
func (s *service) addresses() []netip.Addr {
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// families are the Service's IP families in order (IPv4 when the
// apiserver set none).
func (s *service) families() []bool {
	var out []bool // true: IPv4
	for _, f := range s.Spec.IPFamilies {
		switch f {
		case "IPv4":
			out = append(out, true)
		case "IPv6":
			out = append(out, false)
		}
	}
	if len(out) == 0 {
		out = []bool{true}
	}
	return out
}

type node struct {
	Metadata objectMeta `json:"metadata"`
	Status   struct {
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

// ready says whether the node's Ready condition is True.
func (n *node) ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// addrs are the node's addresses of type typ ("InternalIP").
func (n *node) addrs(typ string) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); a.Type == typ && err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// endpoints is what the controller keeps of an EndpointSlice: its
// Service and the nodes of its ready pod endpoints.
type endpoints struct {
	service string // namespace/name
	nodes   []string
}

// serviceNameLabel names an EndpointSlice's Service.
const serviceNameLabel = "kubernetes.io/service-name"

func parseEndpoints(raw json.RawMessage) (objectMeta, endpoints, error) {
	var es struct {
		Metadata  objectMeta `json:"metadata"`
		Endpoints []struct {
			NodeName   *string                `json:"nodeName"`
			TargetRef  *struct{ Kind string } `json:"targetRef"`
			Conditions struct {
				Ready *bool `json:"ready"`
			} `json:"conditions"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(raw, &es); err != nil {
		return objectMeta{}, endpoints{}, err
	}
	e := endpoints{}
	if name := es.Metadata.Labels[serviceNameLabel]; name != "" {
		e.service = es.Metadata.Namespace + "/" + name
	}
	for _, ep := range es.Endpoints {
		ready := ep.Conditions.Ready != nil && *ep.Conditions.Ready
		pod := ep.TargetRef != nil && ep.TargetRef.Kind == "Pod"
		if ready && pod && ep.NodeName != nil && !slices.Contains(e.nodes, *ep.NodeName) {
			e.nodes = append(e.nodes, *ep.NodeName)
		}
	}
	es.Metadata.Labels = nil
	return es.Metadata, e, nil
}
