#!/usr/bin/env bash
# Builds the node components for linux/amd64 and linux/arm64 into
# OUTDIR/linux-<arch>/ as root-filesystem-shaped trees:
#   usr/bin/cairn-node                  the daemons' multicall binary (CGO_ENABLED=0)
#   usr/bin/cairn-pod                   the per-pod one: CNI plugins, runc shim, mount
#   usr/bin/<applet> -> cairn-node|cairn-pod  one link per applet, to its binary
#   usr/bin/runc                        static, cgo + libseccomp
#   usr/share/cairn/images/pause.tar    OCI/docker archive for `ctr images import`
#   usr/share/cairn/images/coredns.tar  CoreDNS, the same way
#   usr/share/cairn/images/local-path-provisioner.tar, metrics-server.tar
#                                       (the first with cmd/local-path-helper,
#                                       its helper pods' command, beside it)
#   usr/share/cairn/components.json     component, version, sha256
#   iptables, nftables, conntrack        Debian's, with their library closure
#   usr/share/cairn/debs.json            those packages' versions and hashes
# Versions come from versions.env (checked against go.mod). Each arch's tree
# is cached under $CAIRN_CACHE (default $XDG_CACHE_HOME/cairn, else
# ~/.cache/cairn) by a key over the versions, the sources, the Go version and
# the arch; a hit copies the tree and builds nothing.
#
# usage: build.sh OUTDIR [ARCH...]      (ARCH: amd64 arm64; default both)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [ARCH...]}
shift
arches=("$@")
((${#arches[@]})) || arches=(amd64 arm64)
mkdir -p "$out"
out=$(cd "$out" && pwd) # relative to the caller's directory
cd "$here"

# shellcheck source=versions.env
. ./versions.env
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
export GOCACHE=${GOCACHE_CAIRN:-$cache/go-build}
export GOFLAGS=-buildvcs=false
mkdir -p "$cache/components" "$GOCACHE"

log() { echo "components: $*" >&2; }
die() { log "error: $*"; exit 1; }

# versions.env and go.mod must agree.
check_version() {
	local mod=$1 want=$2 got
	got=$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$mod") ||
		die "go list -m $mod failed; run 'go mod download' in image/components"
	[ "$got" = "$want" ] || die "go.mod has $mod $got but versions.env pins $want; run 'go get $mod@$want' in image/components"
}
check_version k8s.io/kubernetes "$KUBERNETES_VERSION"
check_version k8s.io/component-base "v0${KUBERNETES_VERSION#v1}"
check_version github.com/k3s-io/kine "$KINE_VERSION"
check_version go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_version github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
check_version github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"
check_version github.com/flannel-io/flannel "$FLANNEL_VERSION"
check_version github.com/coredns/coredns "$COREDNS_VERSION"
check_version github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION"
check_version sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION"
for pair in COREDNS_IMAGE:COREDNS_VERSION LOCAL_PATH_IMAGE:LOCAL_PATH_VERSION METRICS_SERVER_IMAGE:METRICS_SERVER_VERSION; do
	name=${pair%%:*} vname=${pair##*:}
	[ "${!name##*:}" = "${!vname}" ] || die "$name ${!name} is not tagged with $vname ${!vname}"
done

bash ./gencni.sh

# The cache key: everything that decides the bytes of the output.
source_hash() {
	{
		go version
		cat versions.env go.mod go.sum build.sh gencni.sh
		find cmd internal -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum
		dpkg-query -W -f='${Package} ${Version}\n' libseccomp-dev gcc gcc-aarch64-linux-gnu 2>/dev/null || true
	} | sha256sum | cut -c1-16
}
key=$(source_hash)

kube_time=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.info")
kv=${KUBERNETES_VERSION#v}
kmajor=${kv%%.*} kminor=${kv#*.} kminor=${kminor%%.*}
ldflags="-s -w -buildid="
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$kmajor -X $pkg.gitMinor=$kminor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$kube_time"
done
ldflags+=" -X github.com/k3s-io/kine/pkg/version.Version=$KINE_VERSION -X github.com/k3s-io/kine/pkg/version.GitCommit=$KINE_VERSION"
ldflags+=" -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
ldflags+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
ldflags+=" -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION"

# Build tags that drop code a node never runs (docs/components.md, "Build
# tags"): containerd's devmapper and ZFS snapshotters (btrfs needs cgo, so it
# is out already), its OpenTelemetry exporters, Intel RDT, NRI's WebAssembly
# plugins (the wazero runtime), gRPC's request tracing, urfave/cli's man
# page and markdown generators, kustomize's Go plugin loader, jsm.go's
# expression language, the antithesis SDK. Kubernetes 1.36 has no such tags
# (its cloud providers are gone upstream).
tags="no_btrfs no_devmapper no_zfs no_tracing no_rdt nri_no_wasm grpcnotrace urfave_cli_no_docs"
tags+=" kustomize_disable_go_plugin_support noexprlang no_antithesis_sdk"

# What the linker may leave out of cairn-node beyond the tags
# (internal/dceoverlay, docs/components.md "What was cut"): the methods no
# code calls, once text/template and go-cmp no longer look methods up by
# names known only at run time, and the kine drivers no cairn datastore uses.
kine_drivers=pgsql,mysql,sqlite

# The two multicall binaries (docs/components.md, "Two binaries"): cairn-node
# holds the daemons and tools; cairn-pod what is exec'd per pod, container or
# volume, without Kubernetes and its package initialisers.
node_applets=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
	kine etcd etcdctl containerd ctr flannel)
pod_applets=(containerd-shim-runc-v2 bridge host-local loopback portmap mount umount)

# elapsed SINCE: minutes:seconds from SINCE (a $SECONDS value) to now.
elapsed() { printf '%d:%02d' $(((SECONDS - $1) / 60)) $(((SECONDS - $1) % 60)); }

# step ARCH N NAME: one progress line per step of an arch's build.
step() { log "[linux-$1 $2/$nsteps, $(elapsed "$arch_start")] $3"; }
nsteps=6

# progress NAME TOTAL: reads `go build -v` on stdin (one line per package it
# compiles; anything else, an error, is passed through) and says every 30 s
# (as packages finish) how many were compiled, then when the link starts.
progress() {
	local name=$1 total=$2 n=0 last=$SECONDS start=$SECONDS line
	while IFS= read -r line; do
		case $line in
		*' '* | '#'*) echo "$line" >&2 ;;
		*)
			n=$((n + 1))
			if [ "$line" = "$mainpkg" ]; then
				log "$name: $n packages compiled (of $total; the rest cached), linking, $(elapsed "$start")"
			elif ((SECONDS - last >= 30)); then
				last=$SECONDS
				log "$name: $n of at most $total packages compiled, $(elapsed "$start")"
			fi
			;;
		esac
	done
}
mainpkg=github.com/cairn-os/cairn/image/components/cmd/cairn-node

# timed NAME CMD...: runs CMD under /usr/bin/time -v when there is one and
# appends elapsed time and peak memory to $cache/components/build-times.log.
timed() {
	local name=$1
	shift
	if [ -x /usr/bin/time ]; then
		local t
		t=$(mktemp)
		/usr/bin/time -v -o "$t" "$@" || { cat "$t" >&2; rm -f "$t"; return 1; }
		local wall rss
		wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$t")
		rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$t")
		echo "$(date -u +%FT%TZ) $key $name wall=$wall maxrss_kb=$rss" >>"$cache/components/build-times.log"
		log "$name: $wall, peak RSS $((rss / 1024)) MiB"
		rm -f "$t"
	else
		"$@"
	fi
}

build_runc() {
	local arch=$1 dest=$2 dir cc=gcc
	dir=$(go mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir" ] || die "runc $RUNC_VERSION is not in the module cache"
	[ "$arch" = arm64 ] && cc=aarch64-linux-gnu-gcc
	command -v "$cc" >/dev/null || die "$cc not found; install gcc-aarch64-linux-gnu and libseccomp-dev:$arch (make deps)"
	# Build in runc's own module (its go.mod and go.sum), not ours.
	(cd "$dir" && CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc \
		timed "runc-$arch" go build -mod=readonly -trimpath -tags 'seccomp netgo osusergo' \
		-ldflags "-s -w -buildid= -X main.version=${RUNC_VERSION#v} -X main.gitCommit=$RUNC_VERSION -extldflags -static" \
		-o "$dest" .)
}

build_arch() {
	local arch=$1 tree=$2 dce=$here/.dce/$arch total
	mkdir -p "$tree/usr/bin" "$tree/usr/share/cairn/images"
	step "$arch" 1 "cairn-node: the overlay that lets the linker drop unused code (.dce/$arch)"
	CGO_ENABLED=0 go run ./cmd/dceoverlay -o "$dce" -goos linux -goarch "$arch" -tags "$tags" -kine-drivers "$kine_drivers" ./cmd/cairn-node
	total=$(CGO_ENABLED=0 GOOS=linux GOARCH=$arch go list -modfile "$dce/go.mod" -overlay "$dce/overlay.json" -tags "$tags" -deps ./cmd/cairn-node | wc -l)
	step "$arch" 2 "cairn-node: go build ($total packages; a cold build compiles them all, about 10 minutes on 2 idle cores, then links for 1-2 minutes at ~3 GB)"
	{ CGO_ENABLED=0 GOOS=linux GOARCH=$arch timed "cairn-node-$arch" \
		go build -v -modfile "$dce/go.mod" -overlay "$dce/overlay.json" -trimpath -tags "$tags" -ldflags "$ldflags" \
		-o "$tree/usr/bin/cairn-node" ./cmd/cairn-node 2>&1 >&3 | progress "cairn-node-$arch" "$total"; } 3>&1
	for a in "${node_applets[@]}"; do ln -sf cairn-node "$tree/usr/bin/$a"; done
	# cairn-pod gets the tags but not the overlay: no method lookup by a
	# computed name reaches it (-ldflags=-dumpdep shows no ReflectMethod),
	# so the linker already drops every method nothing calls. TestPodSize
	# says when that changes.
	step "$arch" 3 "cairn-pod: go build (the CNI plugins, the runc shim, mount and umount)"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch timed "cairn-pod-$arch" \
		go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tree/usr/bin/cairn-pod" ./cmd/cairn-pod
	for a in "${pod_applets[@]}"; do ln -sf cairn-pod "$tree/usr/bin/$a"; done
	step "$arch" 4 "runc (cgo, static)"
	build_runc "$arch" "$tree/usr/bin/runc"
	step "$arch" 5 "images: pause, coredns, local-path-provisioner (with local-path-helper), metrics-server"
	local tmp
	tmp=$(mktemp -d)
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w -buildid= -X main.version=${PAUSE_IMAGE##*:}" -o "$tmp/pause" ./cmd/pause
	go run ./cmd/ociarchive -arch "$arch" -name "$PAUSE_IMAGE" -binary "$tmp/pause" -o "$tree/usr/share/cairn/images/pause.tar"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch timed "coredns-$arch" \
		go build -trimpath -tags "$tags" -ldflags "-s -w -buildid= -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
		-o "$tmp/coredns" ./cmd/coredns
	go run ./cmd/ociarchive -arch "$arch" -name "$COREDNS_IMAGE" -path /coredns -binary "$tmp/coredns" \
		-o "$tree/usr/share/cairn/images/coredns.tar"
	# The add-ons' own main packages, built against this module's pins.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch timed "local-path-provisioner-$arch" \
		go build -trimpath -ldflags "-s -w -buildid= -X main.VERSION=$LOCAL_PATH_VERSION" \
		-o "$tmp/local-path-provisioner" github.com/rancher/local-path-provisioner
	# Its helper pods run cairn's local-path-helper from the same image (the
	# add-on's config.json names it): no shell, no second image to import.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "-s -w -buildid= -X main.version=$LOCAL_PATH_VERSION" \
		-o "$tmp/local-path-helper" ./cmd/local-path-helper
	go run ./cmd/ociarchive -arch "$arch" -name "$LOCAL_PATH_IMAGE" -path /usr/bin/local-path-provisioner \
		-binary "$tmp/local-path-provisioner" -add "/usr/bin/local-path-helper=$tmp/local-path-helper" \
		-o "$tree/usr/share/cairn/images/local-path-provisioner.tar"
	# metrics-server's version, where its Makefile puts it (client-go's; the
	# component-base one stays the Kubernetes library's, for API emulation).
	local msv="-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/client-go/pkg/version.gitTreeState=clean"
	# Built in its own module, with the Kubernetes libraries it was released
	# against: with ours (v0.36) its generated OpenAPI names no longer match
	# the API types' model names and it stops at start ("cannot find model
	# definition for io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics").
	local msdir
	msdir=$(go mod download -json "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$msdir" ] || die "metrics-server $METRICS_SERVER_VERSION is not in the module cache"
	(cd "$msdir" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch timed "metrics-server-$arch" \
		go build -mod=readonly -trimpath -ldflags "-s -w -buildid= $msv" \
		-o "$tmp/metrics-server" ./cmd/metrics-server)
	go run ./cmd/ociarchive -arch "$arch" -name "$METRICS_SERVER_IMAGE" -path /metrics-server \
		-binary "$tmp/metrics-server" -o "$tree/usr/share/cairn/images/metrics-server.tar"
	rm -rf "$tmp"
	step "$arch" 6 "components.json"
	write_manifest "$arch" "$tree"
}

write_manifest() {
	local arch=$1 tree=$2 node pod runc
	node=$(sha256sum "$tree/usr/bin/cairn-node" | cut -d' ' -f1)
	pod=$(sha256sum "$tree/usr/bin/cairn-pod" | cut -d' ' -f1)
	runc=$(sha256sum "$tree/usr/bin/runc" | cut -d' ' -f1)
	{
		echo '{'
		echo "  \"arch\": \"$arch\","
		echo "  \"key\": \"$key\","
		echo '  "components": ['
		local c v sum first=1
		for c in kube-apiserver:$KUBERNETES_VERSION kube-controller-manager:$KUBERNETES_VERSION \
			kube-scheduler:$KUBERNETES_VERSION kubelet:$KUBERNETES_VERSION kube-proxy:$KUBERNETES_VERSION \
			kubectl:$KUBERNETES_VERSION kine:$KINE_VERSION etcd:$ETCD_VERSION containerd:$CONTAINERD_VERSION \
			containerd-shim-runc-v2:$CONTAINERD_VERSION ctr:$CONTAINERD_VERSION bridge:$CNI_PLUGINS_VERSION host-local:$CNI_PLUGINS_VERSION \
			loopback:$CNI_PLUGINS_VERSION portmap:$CNI_PLUGINS_VERSION flannel:$FLANNEL_VERSION; do
			v=${c#*:} c=${c%%:*}
			# The hash of the binary the applet's link points to.
			case $(readlink "$tree/usr/bin/$c") in
			cairn-node) sum=$node ;;
			cairn-pod) sum=$pod ;;
			*) die "usr/bin/$c is not a link to cairn-node or cairn-pod" ;;
			esac
			((first)) || echo ','
			first=0
			printf '    {"component": "%s", "version": "%s", "path": "usr/bin/%s", "sha256": "%s"}' "$c" "$v" "$c" "$sum"
		done
		echo ','
		printf '    {"component": "runc", "version": "%s", "path": "usr/bin/runc", "sha256": "%s"}' "$RUNC_VERSION" "$runc"
		# The images: component, the reference it is imported under.
		local img ref
		for img in pause:$PAUSE_IMAGE coredns:$COREDNS_IMAGE local-path-provisioner:$LOCAL_PATH_IMAGE \
			metrics-server:$METRICS_SERVER_IMAGE; do
			ref=${img#*:} img=${img%%:*}
			sum=$(sha256sum "$tree/usr/share/cairn/images/$img.tar" | cut -d' ' -f1)
			printf ',\n    {"component": "%s", "version": "%s", "path": "usr/share/cairn/images/%s.tar", "sha256": "%s"}' "$img" "$ref" "$img" "$sum"
		done
		# cairn's local-path-helper, inside the provisioner's image.
		sum=$(sha256sum "$tree/usr/share/cairn/images/local-path-provisioner.tar" | cut -d' ' -f1)
		printf ',\n    {"component": "local-path-helper", "version": "%s", "path": "usr/share/cairn/images/local-path-provisioner.tar", "sha256": "%s"}' "$LOCAL_PATH_IMAGE" "$sum"
		echo
		echo '  ]'
		echo '}'
	} >"$tree/usr/share/cairn/components.json"
}

# An interrupted build (Ctrl-C, make stopped, an error) leaves no half tree
# behind: the cache's temporary tree and a staged tree not yet swapped in
# are removed on the way out. Only a SIGKILL leaves one, which publish.sh's
# next swaps but one remove.
unfinished=()
finish() { if ((${#unfinished[@]})); then rm -rf "${unfinished[@]}"; fi; }
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for arch in "${arches[@]}"; do
	case $arch in amd64 | arm64) ;; *) die "unknown arch $arch (amd64, arm64)" ;; esac
	entry=$cache/components/$key/linux-$arch
	if [ -f "$entry/usr/share/cairn/components.json" ]; then
		log "linux-$arch: cached ($key)"
	else
		log "linux-$arch: building ($key); a cold build takes 11-16 minutes on 2 idle cores and much longer on a busy machine, a warm one 1-2"
		arch_start=$SECONDS
		tmp=$cache/components/.tmp-$arch-$$
		rm -rf "$tmp"
		# A build killed outright left its temporary tree; its process is gone.
		for d in "$cache"/components/.tmp-"$arch"-*; do
			if [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null; then rm -rf "$d"; fi
		done
		unfinished=("$tmp")
		build_arch "$arch" "$tmp"
		mkdir -p "$(dirname "$entry")"
		rm -rf "$entry"
		mv "$tmp" "$entry"
		unfinished=()
		log "linux-$arch: built in $(elapsed "$arch_start")"
	fi
	# The tree is finished beside out/linux-ARCH and swapped in by one
	# rename (publish.sh): an image build reading it meanwhile sees the
	# old tree or the new, never a mix.
	staged=$(bash "$here/publish.sh" stage "$out" "$arch" "$entry")
	unfinished=("$staged")
	# Netfilter userland from Debian: resolved against apt's lists on every
	# run (the .debs are cached), so a security update is picked up.
	(cd "$here/../.." && go run ./image/debdeps/cmd/debdeps -arch "$arch" -debs "$cache/debs/$arch" -o "$staged") || {
		rm -rf "$staged"
		die "adding iptables/nftables/conntrack for $arch failed; run apt-get update (and dpkg --add-architecture arm64)"
	}
	bash "$here/publish.sh" swap "$out" "$arch" "$staged"
	unfinished=()
	log "linux-$arch: $out/linux-$arch"
done
