package manifests

import (
	"context"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// leaseDuration is how long a holder's Lease stands unrenewed; it renews
// every third of it while it applies.
var leaseDuration = 60 * time.Second

// maxLeaseDuration bounds what a Lease may claim (a stranger's write).
const maxLeaseDuration = 10 * time.Minute

const leasePath = "/apis/coordination.k8s.io/v1/namespaces/" + Namespace + "/leases"

// microTime is the form of a Kubernetes MicroTime.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

// lease is the JSON of a coordination.k8s.io/v1 Lease, the fields used.
type lease struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		Labels          map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		HolderIdentity       *string `json:"holderIdentity,omitempty"`
		LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
		AcquireTime          string  `json:"acquireTime,omitempty"`
		RenewTime            string  `json:"renewTime,omitempty"`
		LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
	} `json:"spec"`
}

// holder is a held Lease: ctx ends when it is lost or released.
type holder struct {
	ctx     context.Context
	release func()
}

// take takes the Lease, or renews it when this server holds it: nil
// (and no error) when another server holds it and it is fresh, or took
// it first.
func (a *applier) take(ctx context.Context) (*holder, error) {
	ok, err := a.claim(ctx)
	if !ok || err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	supervise.Go("manifests: lease", func() {
		defer close(done)
		for supervise.Sleep(hctx, leaseDuration/3) {
			if ok, _ := a.claim(hctx); !ok && hctx.Err() == nil {
				// Lost, or not renewed: stop before another server
				// starts.
				cancel()
				return
			}
		}
	})
	return &holder{ctx: hctx, release: func() {
		cancel()
		<-done
		a.free(ctx)
	}}, nil
}

// claim takes or renews the Lease once: false when another server holds
// it and it is fresh, or a write raced another's.
func (a *applier) claim(ctx context.Context) (bool, error) {
	var l lease
	now := a.now()
	err := a.o.API.Get(ctx, leasePath+"/"+LeaseName, &l)
	if kube.IsStatus(err, http.StatusNotFound) {
		l = lease{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"}
		l.Metadata.Name, l.Metadata.Namespace = LeaseName, Namespace
		l.Metadata.Labels = map[string]string{"app.kubernetes.io/managed-by": "cairn"}
		a.hold(&l, now)
		err = a.o.API.Do(ctx, http.MethodPost, leasePath, &l, nil)
		if kube.IsStatus(err, http.StatusConflict) {
			return false, nil
		}
		return err == nil, err
	}
	if err != nil {
		return false, err
	}
	if h := l.Spec.HolderIdentity; h != nil && *h != "" && *h != a.o.Node && fresh(l, now) {
		return false, nil
	}
	a.hold(&l, now)
	err = a.o.API.Do(ctx, http.MethodPut, leasePath+"/"+LeaseName, &l, nil)
	if kube.IsStatus(err, http.StatusConflict) {
		return false, nil
	}
	return err == nil, err
}

// hold makes l this server's, renewed now.
func (a *applier) hold(l *lease, now time.Time) {
	if h := l.Spec.HolderIdentity; h == nil || *h != a.o.Node {
		node := a.o.Node
		var n int32
		if t := l.Spec.LeaseTransitions; t != nil && *t < 1<<30 {
			n = *t + 1
		}
		l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &node, &n
		l.Spec.AcquireTime = now.UTC().Format(microTime)
	}
	secs := int32(leaseDuration / time.Second)
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = now.UTC().Format(microTime)
}

// fresh says whether l was renewed within its duration (at most
// maxLeaseDuration), on this server's clock.
func fresh(l lease, now time.Time) bool {
	renewed, err := time.Parse(microTime, l.Spec.RenewTime)
	if err != nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	d := min(time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second, maxLeaseDuration)
	return now.Before(renewed.Add(d))
}

// free gives the Lease up, when this server still holds it, so that
// another server with work need not wait for it to age.
func (a *applier) free(ctx context.Context) {
	var l lease
	if a.o.API.Get(ctx, leasePath+"/"+LeaseName, &l) != nil {
		return
	}
	if h := l.Spec.HolderIdentity; h == nil || *h != a.o.Node {
		return
	}
	empty := ""
	l.Spec.HolderIdentity = &empty
	a.o.API.Do(ctx, http.MethodPut, leasePath+"/"+LeaseName, &l, nil)
}
