#!/usr/bin/env bash
# Prints, per architecture, what issue #13 tracks for the node payload: the
# sizes per component and in total, installed and compressed (sizes.sh),
# the build times and peak memory build.sh logged for the build measured, a
# warm relink of cairn-node after a one-line change measured now, and with
# BENCH_COLD=1 a cold build (an empty Go build cache; 12 minutes or more per
# arch on 2 cores, ~3 GB). The load average is printed next to every time:
# on a shared machine it decides them.
#
# usage: bench.sh OUTDIR [ARCH...]     (OUTDIR as for build.sh; default both arches)
#        BENCH_COLD=1 bench.sh OUTDIR amd64
#        BENCH_SIZES=0 bench.sh ...       (times only: the sizes take minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: bench.sh OUTDIR [ARCH...]}
shift
arches=("$@")
((${#arches[@]})) || arches=(amd64 arm64)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}

log() { echo "bench: $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# measure NAME CMD...: runs CMD under /usr/bin/time -v and prints one line:
# wall time, peak RSS, the load average before and after.
measure() {
	local name=$1 t before
	shift
	t=$(mktemp)
	before=$(load)
	/usr/bin/time -v -o "$t" "$@" >/dev/null 2>"$t.err" || { cat "$t.err" "$t" >&2; rm -f "$t" "$t.err"; return 1; }
	printf '| %s | %s | %d MiB | %s | %s |\n' "$name" \
		"$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$t")" \
		$(($(sed -n 's/.*Maximum resident set size (kbytes): //p' "$t") / 1024)) "$before" "$(load)"
	rm -f "$t" "$t.err"
}

log "building (or restoring from the cache) ${arches[*]}"
bash "$here/build.sh" "$out" "${arches[@]}"

for arch in "${arches[@]}"; do
	[ "${BENCH_SIZES:-1}" = 0 ] && break
	bash "$here/sizes.sh" "$out/linux-$arch"
	# cairn-node alone with xz's branch filter for its architecture.
	bcj=--x86
	[ "$arch" = arm64 ] && bcj=--arm64
	printf 'cairn-node with xz %s --lzma2=preset=9: %s MB\n\n' "$bcj" \
		"$(nice -n 10 xz -T1 "$bcj" --lzma2=preset=9 -c "$out/linux-$arch/usr/bin/cairn-node" | wc -c | awk '{printf "%.1f", $1 / 1e6}')"
done

echo "| build | wall | peak RSS | load before | load after |"
echo "|---|---|---|---|---|"
# A one-line change in a component: one more file in cairn-node's main
# package (through an overlay, the tree is not touched), so go build
# compiles that package again and links.
tags=$(sed -n 's/^tags="\(.*\)"$/\1/p; s/^tags+=" \(.*\)"$/\1/p' "$here/build.sh" | tr '\n' ' ')
for arch in "${arches[@]}"; do
	dce=$here/.dce/$arch
	[ -f "$dce/overlay.json" ] || { log "no $dce/overlay.json; build.sh writes it"; exit 1; }
	tmp=$(mktemp -d)
	printf 'package main\n\nvar benchStamp = "%s"\n' "$(date +%s%N)" >"$tmp/zz_bench.go"
	sed "s|\"Replace\": {|\"Replace\": {\n\t\t\"$here/cmd/cairn-node/zz_bench.go\": \"$tmp/zz_bench.go\",|" "$dce/overlay.json" >"$tmp/overlay.json"
	(cd "$here" && GOCACHE=${GOCACHE_CAIRN:-$cache/go-build} CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-buildvcs=false \
		measure "cairn-node $arch, relink after a one-line change" nice -n 10 go build -modfile "$dce/go.mod" -overlay "$tmp/overlay.json" \
		-trimpath -tags "$tags" -ldflags '-s -w' -o "$tmp/cairn-node" ./cmd/cairn-node)
	rm -rf "$tmp"
done
# The same for the init (the main module's PID 1), with its build cache.
tmp=$(mktemp -d)
printf 'package main\n\nvar benchStamp = "%s"\n' "$(date +%s%N)" >"$tmp/zz_bench.go"
root=$(cd "$here/../.." && pwd)
printf '{"Replace": {"%s": "%s"}}\n' "$root/init/zz_bench.go" "$tmp/zz_bench.go" >"$tmp/overlay.json"
(cd "$root" && CGO_ENABLED=0 measure "init (amd64), relink after a one-line change" nice -n 10 go build -overlay "$tmp/overlay.json" -trimpath -o "$tmp/init" ./init)
rm -rf "$tmp"

if [ "${BENCH_COLD:-}" = 1 ]; then
	for arch in "${arches[@]}"; do
		tmp=$(mktemp -d)
		log "cold build of linux-$arch in $tmp (empty Go build cache)"
		CAIRN_CACHE=$tmp/cache GOCACHE_CAIRN=$tmp/cache/go-build measure "components $arch, cold (build.sh, empty Go build cache)" \
			nice -n 10 bash "$here/build.sh" "$tmp/out" "$arch"
		grep -h "cairn-node-$arch" "$tmp/cache/components/build-times.log" | sed 's/^/    cold: /' >&2
		rm -rf "$tmp"
	done
fi
echo
echo "build.sh's log of builds ($cache/components/build-times.log, last 12):"
tail -n 12 "$cache/components/build-times.log" 2>/dev/null | sed 's/^/    /'
