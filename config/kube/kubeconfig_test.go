package kube

import (
	"strings"
	"testing"
)

func TestKubeconfigServer(t *testing.T) {
	kc := Kubeconfig("", []byte("ca"), []byte("cert"), []byte("key"), "cairn-admin")
	got, err := SetServer(kc, "https://10.0.0.5:6443")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "\n      server: https://10.0.0.5:6443\n") || strings.Contains(string(got), "127.0.0.1") {
		t.Errorf("SetServer did not point the kubeconfig at the server:\n%s", got)
	}
}
