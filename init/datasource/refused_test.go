package datasource

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// gzipped compresses data, as a user-data file may be.
func gzipped(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(data))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// truncatedAt cuts the image at img just before the first byte of what,
// so that a file holding it is there but cannot be read.
func truncatedAt(t *testing.T, img, what string) string {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(what))
	if i < 0 {
		t.Fatalf("%q is not in the image", what)
	}
	if err := os.Truncate(img, int64(i)); err != nil {
		t.Fatal(err)
	}
	return img
}

// A source that is there but cannot be used is refused, never taken for
// no source: Gather returns no documents, and an error naming the source
// and why, which the init prints before it retries. A node meant to join
// a cluster must not start a new one on the defaults instead.
func TestRefusedSources(t *testing.T) {
	bomb := gzipped(t, "#cloud-config\n"+strings.Repeat(" ", maxFile))
	tooLarge := "#cloud-config\n" + strings.Repeat("#", maxFile)
	valid := "#cloud-config\nkubernetes:\n  role: agent\n"
	for _, tc := range []struct {
		name   string
		baked  string
		volume func(t *testing.T) string
		source string
		reason string
	}{
		{name: "baked file that expands past the limit", baked: bomb,
			source: "/etc/cairn/config.yaml", reason: "expands to more than 4194304 bytes"},
		{name: "baked file past the limit", baked: tooLarge,
			source: "/etc/cairn/config.yaml", reason: "the document is larger than the 4 MiB a cloud-config may have"},
		{name: "baked shell script", baked: "#!/bin/sh\necho hi\n",
			source: "/etc/cairn/config.yaml", reason: "a shell script; cairn reads only #cloud-config"},
		{name: "seed user-data that expands past the limit",
			volume: func(t *testing.T) string {
				return vfatImage(t, "cidata", 2, "", map[string]string{"user-data": bomb, "meta-data": "local-hostname: a1\n"})
			},
			source: "cidata:/dev/vdb/user-data", reason: "expands to more than 4194304 bytes"},
		{name: "seed user-data past the limit",
			volume: func(t *testing.T) string {
				return vfatImage(t, "cidata", 8, "", map[string]string{"user-data": tooLarge})
			},
			source: "cidata:/dev/vdb/user-data", reason: "more than the 4194304 a config file may have"},
		{name: "seed user-data that cannot be read",
			volume: func(t *testing.T) string {
				img := isoImage(t, "genisoimage", []string{"-J", "-R"}, "cidata", map[string]string{"user-data": valid})
				return truncatedAt(t, img, valid)
			},
			source: "cidata:/dev/vdb/user-data", reason: "reading user-data"},
		{name: "seed meta-data that is not YAML",
			volume: func(t *testing.T) string {
				return vfatImage(t, "cidata", 2, "", map[string]string{"user-data": valid, "meta-data": "local-hostname: [a1\n"})
			},
			source: "cidata:/dev/vdb/meta-data", reason: "not YAML"},
		{name: "seed network-config of an unknown version",
			volume: func(t *testing.T) string {
				return vfatImage(t, "cidata", 2, "", map[string]string{"user-data": valid, "network-config": "version: 3\n"})
			},
			source: "cidata:/dev/vdb/network-config", reason: "network config version 3 is not supported"},
		{name: "config drive user_data that expands past the limit",
			volume: func(t *testing.T) string {
				return isoImage(t, "genisoimage", []string{"-J", "-R"}, "config-2", map[string]string{"openstack/latest/user_data": bomb})
			},
			source: "config-2:/dev/vdb/openstack/latest/user_data", reason: "expands to more than 4194304 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devices := map[string]string{}
			if tc.volume != nil {
				devices["vdb"] = tc.volume(t)
			}
			// A URL on the command line: not asked once a local source
			// is refused.
			var asked atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Store(true)
				w.Write([]byte(valid))
			}))
			defer srv.Close()
			srcs, err := Gather(context.Background(), Options{Root: fakeRoot(t, tc.baked, devices), Cmdline: "cairn.config=" + srv.URL + "/c"})
			var refused RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("Gather = %v, %v; want a RefusedError", names(srcs), err)
			}
			if len(srcs) != 0 {
				t.Errorf("Gather returned %v with a refused source", names(srcs))
			}
			if len(refused) != 1 || refused[0].Source != tc.source || !strings.Contains(refused[0].Err.Error(), tc.reason) {
				t.Errorf("refused %q; want %s refused for %q", refused, tc.source, tc.reason)
			}
			if asked.Load() {
				t.Error("the URL on the command line was fetched after a local source was refused")
			}
		})
	}
}
