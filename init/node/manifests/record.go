package manifests

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/cairn-os/cairn/config/kube"
)

// entry is what the record keeps of one manifest: after the manifest is
// gone from every server, its kinds are where its objects are found.
type entry struct {
	// Source is where the last server that applied it read it.
	Source string `json:"source"`
	// Kinds are "APIVERSION KIND" of every object it applied and not yet
	// deleted.
	Kinds []string `json:"kinds"`
	// Servers are the servers that hold it.
	Servers []string `json:"servers"`
}

// record maps manifest names to their entries: the data of the ConfigMap
// kube-system/cairn-manifests, one JSON entry per key.
type record map[string]entry

const recordPath = "/api/v1/namespaces/" + Namespace + "/configmaps/" + RecordName

// readRecord reads the record; none is an empty one. An entry that does
// not parse is kept with nothing in it: its name may be removed, but no
// object is found through it.
func readRecord(ctx context.Context, api *kube.Client) (record, error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	err := api.Get(ctx, recordPath, &cm)
	if kube.IsStatus(err, http.StatusNotFound) {
		return record{}, nil
	}
	if err != nil {
		return nil, err
	}
	rec := record{}
	for name, v := range cm.Data {
		var e entry
		json.Unmarshal([]byte(v), &e)
		rec[name] = e
	}
	return rec, nil
}

// write applies the record whole (server-side apply drops the keys it no
// longer names).
func (rec record) write(ctx context.Context, api *kube.Client) error {
	data := map[string]string{}
	for name, e := range rec {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		data[name] = string(b)
	}
	return api.Apply(ctx, kube.Object{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": RecordName, "namespace": Namespace,
			"labels": map[string]string{"app.kubernetes.io/managed-by": "cairn"}},
		"data": data}, FieldManager)
}

// union is a and b, sorted, without repeats.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// without is list without s.
func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}

func (e entry) equal(f entry) bool {
	return e.Source == f.Source && slices.Equal(e.Kinds, f.Kinds) && slices.Equal(e.Servers, f.Servers)
}
