package vip

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
)

// LeaseName is the Lease the servers elect the VIP's holder with, in
// kube-system (Config.Lease names the others).
const LeaseName = "cairn-vip"

// durationAnnotation carries the holder's lease duration exactly; the
// Lease's own field has whole seconds.
const durationAnnotation = "cairn-os.github.io/lease-duration"

// maxBody bounds what is read of an apiserver's answer.
const maxBody = 64 << 10

// API is the Leases and the readiness of one apiserver, over its REST API:
// the init carries no Kubernetes client library, and a Lease is one small
// JSON object.
type API struct {
	c *kube.Client
}

// NewAPI reaches the apiserver at base with tlsCfg (its CA, and a client
// certificate that may write Leases in kube-system), within 10 s a
// request.
func NewAPI(base string, tlsCfg *tls.Config) *API {
	return NewAPIDial(base, tlsCfg, nil)
}

// NewAPIDial is NewAPI making its connections with dial (a server's,
// whose client certificate is renewed: its connections are made again).
func NewAPIDial(base string, tlsCfg *tls.Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *API {
	return &API{c: kube.New(base, kube.Options{TLS: tlsCfg, Timeout: 10 * time.Second, MaxReply: maxBody, DialContext: dial})}
}

// Ready checks /readyz.
func (a *API) Ready(ctx context.Context) error {
	code, body, err := a.c.Raw(ctx, http.MethodGet, "/readyz")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("/readyz answered %d: %q", code, brief.FirstLine(body, 200))
	}
	return nil
}

const leasePath = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"

// lease is the JSON of a coordination.k8s.io/v1 Lease, the fields the
// election uses.
type lease struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   leaseMeta `json:"metadata"`
	Spec       leaseSpec `json:"spec"`
}

type leaseMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

type leaseSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          string  `json:"acquireTime,omitempty"`
	RenewTime            string  `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
}

// microTime is the form of a Kubernetes MicroTime.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

func toLease(name string, r Record) lease {
	secs := int32(min(math.Ceil(r.Duration.Seconds()), math.MaxInt32))
	if secs < 1 {
		secs = 1
	}
	holder := r.Holder
	trans := int32(min(r.Transitions, math.MaxInt32))
	l := lease{APIVersion: "coordination.k8s.io/v1", Kind: "Lease",
		Metadata: leaseMeta{Name: name, Namespace: "kube-system", ResourceVersion: r.Version,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "cairn"},
			Annotations: map[string]string{durationAnnotation: r.Duration.String()}},
		Spec: leaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, LeaseTransitions: &trans},
	}
	if !r.Acquired.IsZero() {
		l.Spec.AcquireTime = r.Acquired.UTC().Format(microTime)
	}
	if !r.Renewed.IsZero() {
		l.Spec.RenewTime = r.Renewed.UTC().Format(microTime)
	}
	return l
}

// maxLeaseDuration bounds the duration a lease may claim: an annotation
// that says more (a stranger's write) is read as the whole seconds, and
// whole seconds that say more are read as maxLeaseDuration, so no lease
// makes the other servers wait longer.
const maxLeaseDuration = 5 * time.Minute

func fromLease(l lease) Record {
	r := Record{Version: l.Metadata.ResourceVersion}
	if l.Spec.HolderIdentity != nil {
		r.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseDurationSeconds != nil {
		r.Duration = min(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second, maxLeaseDuration)
	}
	if d, err := time.ParseDuration(l.Metadata.Annotations[durationAnnotation]); err == nil && d > 0 && d <= maxLeaseDuration {
		r.Duration = d
	}
	if l.Spec.LeaseTransitions != nil {
		r.Transitions = int(*l.Spec.LeaseTransitions)
	}
	r.Acquired, _ = time.Parse(microTime, l.Spec.AcquireTime)
	r.Renewed, _ = time.Parse(microTime, l.Spec.RenewTime)
	return r
}

// Get reads the lease called name.
func (a *API) Get(ctx context.Context, name string) (Record, error) {
	return a.call(ctx, http.MethodGet, leasePath+"/"+name, nil)
}

// Create makes the lease called name.
func (a *API) Create(ctx context.Context, name string, r Record) (Record, error) {
	r.Version = ""
	l := toLease(name, r)
	return a.call(ctx, http.MethodPost, leasePath, &l)
}

// Update replaces the lease called name if it is still at r.Version.
func (a *API) Update(ctx context.Context, name string, r Record) (Record, error) {
	l := toLease(name, r)
	return a.call(ctx, http.MethodPut, leasePath+"/"+name, &l)
}

// call sends one request about the lease and reads the lease it answers.
func (a *API) call(ctx context.Context, method, path string, l *lease) (Record, error) {
	var body any
	if l != nil {
		body = l
	}
	var got lease
	err := a.c.Do(ctx, method, path, body, &got)
	switch {
	case kube.IsStatus(err, http.StatusNotFound):
		return Record{}, ErrNotFound
	case kube.IsStatus(err, http.StatusConflict):
		return Record{}, ErrConflict
	case err != nil:
		return Record{}, err
	}
	return fromLease(got), nil
}
