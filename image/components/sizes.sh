#!/usr/bin/env bash
# Prints the node payload's sizes per component, installed and compressed
# whole with zstd -19 and xz -9 (the measure docs/components.md uses), for
# each tree given; then the build times build.sh logged for the tree's cache
# key. The netfilter userland (Debian's iptables, nftables, conntrack and
# their libraries) is measured as one tar of everything the other rows do not
# cover. Totals: the node payload (binaries, pause, netfilter) and the add-on
# images (CoreDNS, local-path-provisioner, metrics-server), which the node
# imports into containerd.
#
# usage: sizes.sh TREE...      (e.g. out/components/linux-amd64)
#        SIZES_XZ_FLAGS='--arm64 --lzma2=preset=9' sizes.sh ...  (xz options)
set -euo pipefail
(($#)) || { echo "usage: sizes.sh TREE..." >&2; exit 2; }
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
xzflags=${SIZES_XZ_FLAGS:--9}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

# row NAME: reads the bytes on stdin, prints NAME raw zstd xz in MB and adds
# them to the totals named by $total.
row() {
	local name=$1 tmp raw z x
	tmp=$(mktemp)
	cat >"$tmp"
	raw=$(stat -c %s "$tmp")
	z=$(nice -n 10 zstd -q -19 -T1 -c "$tmp" | wc -c)
	# shellcheck disable=SC2086 # xzflags is a list of options
	x=$(nice -n 10 xz -T1 $xzflags -c "$tmp" | wc -c)
	rm -f "$tmp"
	printf '| %s | %s | %s | %s |\n' "$name" "$(mb "$raw")" "$(mb "$z")" "$(mb "$x")"
	sums[$total.raw]=$((${sums[$total.raw]:-0} + raw))
	sums[$total.z]=$((${sums[$total.z]:-0} + z))
	sums[$total.x]=$((${sums[$total.x]:-0} + x))
}

tarof() { tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "${@:2}"; }

for t in "$@"; do
	[ -f "$t/usr/share/cairn/components.json" ] || { echo "sizes.sh: $t has no usr/share/cairn/components.json" >&2; exit 1; }
	arch=$(sed -n 's/.*"arch": "\([^"]*\)".*/\1/p' "$t/usr/share/cairn/components.json")
	key=$(sed -n 's/.*"key": "\([^"]*\)".*/\1/p' "$t/usr/share/cairn/components.json")
	declare -A sums=()
	echo "## $t ($arch, key $key); MB = 10^6 bytes, xz $xzflags"
	echo
	echo '| component | installed | zstd -19 | xz |'
	echo '|---|---|---|---|'
	total=node
	row cairn-node <"$t/usr/bin/cairn-node"
	row cairn-pod <"$t/usr/bin/cairn-pod"
	row runc <"$t/usr/bin/runc"
	row pause.tar <"$t/usr/share/cairn/images/pause.tar"
	# Everything else that is not an image, a link or the manifest: Debian's.
	(cd "$t" && find . \( -type f -o -type l \) ! -path ./usr/bin/cairn-node ! -path ./usr/bin/cairn-pod \
		! -path ./usr/bin/runc ! -path './usr/share/cairn/*' ! -lname cairn-node ! -lname cairn-pod | LC_ALL=C sort) >"${TMPDIR:-/tmp}/sizes.$$"
	tar -C "$t" --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -T "${TMPDIR:-/tmp}/sizes.$$" | row "netfilter userland"
	rm -f "${TMPDIR:-/tmp}/sizes.$$"
	printf '| **node payload** | %s | %s | %s |\n' "$(mb "${sums[node.raw]}")" "$(mb "${sums[node.z]}")" "$(mb "${sums[node.x]}")"
	total=addons
	for img in coredns local-path-provisioner metrics-server; do
		[ -f "$t/usr/share/cairn/images/$img.tar" ] && row "$img.tar" <"$t/usr/share/cairn/images/$img.tar"
	done
	if [ -n "${sums[addons.raw]:-}" ]; then
		printf '| **add-on images** | %s | %s | %s |\n' "$(mb "${sums[addons.raw]}")" "$(mb "${sums[addons.z]}")" "$(mb "${sums[addons.x]}")"
		printf '| **all** | %s | %s | %s |\n' "$(mb $((sums[node.raw] + sums[addons.raw])))" \
			"$(mb $((sums[node.z] + sums[addons.z])))" "$(mb $((sums[node.x] + sums[addons.x])))"
	fi
	echo
	if [ -f "$cache/components/build-times.log" ] && grep -q " $key " "$cache/components/build-times.log"; then
		echo "build times logged for $key:"
		grep " $key " "$cache/components/build-times.log" | sed 's/^/    /'
		echo
	fi
	unset sums
done
