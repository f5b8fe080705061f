package vip

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// LeaseName is the Lease the servers elect the VIP's holder with, in
// kube-system.
const LeaseName = "cairn-vip"

// durationAnnotation carries the holder's lease duration exactly; the
// Lease's own field has whole seconds.
const durationAnnotation = "cairn-os.github.io/lease-duration"

// maxBody bounds what is read of an apiserver's answer.
const maxBody = 64 << 10

// API is the Lease and the readiness of one apiserver, over its REST API:
// the init carries no Kubernetes client library, and a Lease is one small
// JSON object.
type API struct {
	base string // https://127.0.0.1:6443
	hc   *http.Client
}

// NewAPI reaches the apiserver at base with tlsCfg (its CA, and a client
// certificate that may write Leases in kube-system).
func NewAPI(base string, tlsCfg *tls.Config) *API {
	return &API{base: base, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil,
			MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute},
	}}
}

// Ready checks /readyz.
func (a *API) Ready(ctx context.Context) error {
	code, body, err := a.do(ctx, http.MethodGet, "/readyz", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("/readyz answered %d: %s", code, firstLine(body))
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

func toLease(r Record) lease {
	secs := int32(min(math.Ceil(r.Duration.Seconds()), math.MaxInt32))
	if secs < 1 {
		secs = 1
	}
	holder := r.Holder
	trans := int32(min(r.Transitions, math.MaxInt32))
	l := lease{APIVersion: "coordination.k8s.io/v1", Kind: "Lease",
		Metadata: leaseMeta{Name: LeaseName, Namespace: "kube-system", ResourceVersion: r.Version,
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

// maxLeaseDuration bounds the duration a lease may claim: one that says
// more (a stranger's write) is read as its whole seconds.
const maxLeaseDuration = 5 * time.Minute

func fromLease(l lease) Record {
	r := Record{Version: l.Metadata.ResourceVersion}
	if l.Spec.HolderIdentity != nil {
		r.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseDurationSeconds != nil {
		r.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
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

// Get reads the lease.
func (a *API) Get(ctx context.Context) (Record, error) {
	return a.call(ctx, http.MethodGet, leasePath+"/"+LeaseName, nil)
}

// Create makes the lease.
func (a *API) Create(ctx context.Context, r Record) (Record, error) {
	r.Version = ""
	l := toLease(r)
	return a.call(ctx, http.MethodPost, leasePath, &l)
}

// Update replaces the lease if it is still at r.Version.
func (a *API) Update(ctx context.Context, r Record) (Record, error) {
	l := toLease(r)
	return a.call(ctx, http.MethodPut, leasePath+"/"+LeaseName, &l)
}

// call sends one request about the lease and reads the lease it answers.
func (a *API) call(ctx context.Context, method, path string, l *lease) (Record, error) {
	var body []byte
	if l != nil {
		var err error
		if body, err = json.Marshal(l); err != nil {
			return Record{}, err
		}
	}
	code, data, err := a.do(ctx, method, path, body)
	if err != nil {
		return Record{}, err
	}
	switch {
	case code == http.StatusNotFound:
		return Record{}, ErrNotFound
	case code == http.StatusConflict:
		return Record{}, ErrConflict
	case code/100 != 2:
		return Record{}, fmt.Errorf("%s %s: %d: %s", method, path, code, firstLine(data))
	}
	var got lease
	if err := json.Unmarshal(data, &got); err != nil {
		return Record{}, fmt.Errorf("%s %s: the answer is not a Lease: %w", method, path, err)
	}
	return fromLease(got), nil
}

func (a *API) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// firstLine is the start of an answer, for a message.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return strconv.Quote(string(b))
}
