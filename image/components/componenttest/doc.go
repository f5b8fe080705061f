// Package componenttest exercises the built node components: the trees
// `make components` writes to out/components/linux-<arch>/. The tests run
// the real binaries (the arm64 ones under qemu-aarch64-static) and start a
// real PostgreSQL, kine and kube-apiserver on loopback.
//
// CAIRN_COMPONENTS names the directory holding linux-amd64/ and
// linux-arm64/; `make components-test` sets it. Without it the tests skip,
// saying how to run them.
package componenttest
