package upgrader

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Draining: how often a blocked eviction is retried and pods that are
// going are looked at again.
var drainRetry = 5 * time.Second

// cordon marks the node unschedulable (or schedulable again).
func cordon(ctx context.Context, api *kube.Client, name string, unschedulable bool) error {
	return api.MergePatch(ctx, "/api/v1/nodes/"+name, map[string]any{"spec": map[string]any{"unschedulable": unschedulable}})
}

// podRef is what draining needs of a pod.
type podRef struct {
	Metadata struct {
		Name, Namespace string
		UID             string `json:"uid"`
		Annotations     map[string]string
		OwnerReferences []struct{ Kind string } `json:"ownerReferences"`
	} `json:"metadata"`
	Status struct{ Phase string } `json:"status"`
}

func (p podRef) String() string { return p.Metadata.Namespace + "/" + p.Metadata.Name }

// evictable says whether draining moves the pod: not a DaemonSet's (it
// would come back at once, and serves this node), not a static pod's
// mirror, not one that has ended.
func (p podRef) evictable() bool {
	if p.Metadata.Annotations["kubernetes.io/config.mirror"] != "" {
		return false
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return false
		}
	}
	return p.Status.Phase != "Succeeded" && p.Status.Phase != "Failed"
}

// podsOn lists the evictable pods bound to node.
func podsOn(ctx context.Context, api *kube.Client, node string) ([]podRef, error) {
	var list struct{ Items []podRef }
	q := url.Values{"fieldSelector": {"spec.nodeName=" + node}, "limit": {"500"}}
	if err := api.Get(ctx, "/api/v1/pods?"+q.Encode(), &list); err != nil {
		return nil, err
	}
	var out []podRef
	for _, p := range list.Items {
		if p.evictable() {
			out = append(out, p)
		}
	}
	return out, nil
}

// drain cordons node and evicts its pods through the eviction API, which
// honours PodDisruptionBudgets: an eviction a budget refuses (429) is
// retried until timeout, then drain fails naming the pod and the budget's
// words. It returns once the evicted pods are gone.
func drain(ctx context.Context, api *kube.Client, node string, timeout time.Duration, printf func(string, ...any)) error {
	if err := cordon(ctx, api, node, true); err != nil {
		return fmt.Errorf("cordoning: %w", err)
	}
	deadline := time.Now().Add(timeout)
	evicted := map[string]bool{}
	var blocked string
	for {
		pods, err := podsOn(ctx, api, node)
		if err != nil && time.Now().After(deadline) {
			return fmt.Errorf("listing the node's pods: %w", err)
		}
		if err == nil && len(pods) == 0 {
			return nil
		}
		blocked = ""
		for _, p := range pods {
			if evicted[p.Metadata.UID] {
				blocked = p.String() + " is still terminating"
				continue
			}
			ev := map[string]any{"apiVersion": "policy/v1", "kind": "Eviction",
				"metadata": map[string]any{"name": p.Metadata.Name, "namespace": p.Metadata.Namespace}}
			err := api.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+p.Metadata.Namespace+"/pods/"+p.Metadata.Name+"/eviction", ev, nil)
			switch {
			case err == nil || kube.IsStatus(err, http.StatusNotFound):
				evicted[p.Metadata.UID] = true
				printf("upgrade: drain: evicted %s", p)
			default:
				// 429: a disruption budget refuses it for now; asked again.
				blocked = fmt.Sprintf("evicting %s: %v", p, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not drained after %s: %s", timeout, blocked)
		}
		if !supervise.Sleep(ctx, drainRetry) {
			return ctx.Err()
		}
	}
}
