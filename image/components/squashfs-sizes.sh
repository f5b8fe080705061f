#!/usr/bin/env bash
# Compresses a components tree as the system image does (mksquashfs,
# owners 0:0, no xattrs) with each compressor, level and block size in
# $SQUASHFS_VARIANTS and prints one table row per variant: the size in MiB,
# the wall and CPU time, the load average. A BCJ variant is skipped when
# mksquashfs does not offer that filter (Debian 12's 4.5.1 has x86 and arm,
# not arm64). docs/build.md ("The system image's compression, per board")
# has the figures.
#
# usage: squashfs-sizes.sh TREE
set -euo pipefail
tree=${1:?usage: squashfs-sizes.sh TREE}
variants=${SQUASHFS_VARIANTS:-"zstd:6:128K zstd:19:128K zstd:19:1M xz::128K xz::1M xz-x86::1M"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
filters=$(mksquashfs -help 2>&1 | sed -n 's/.*Available filters: //p')
echo "| compressor | block | size | wall | CPU (user+sys) | load |"
echo "|---|---|---|---|---|---|"
for v in $variants; do
	IFS=: read -r comp level block <<<"$v"
	args=(-comp "${comp%%-*}" -b "$block")
	[ -n "$level" ] && args+=(-Xcompression-level "$level")
	name=${comp%%-*}${level:+ $level}
	if [ "$comp" != "${comp#*-}" ]; then
		f=${comp#*-}
		case ", $filters," in *", $f,"*) ;; *) echo "| $name, BCJ $f | $block | (mksquashfs has no $f filter) | | | |"; continue ;; esac
		args+=(-Xbcj "$f")
		name+=", BCJ $f"
	fi
	before=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -f '%e %U %S' -o "$tmp/time" nice -n 10 mksquashfs "$tree" "$tmp/img" -noappend "${args[@]}" \
		-all-root -no-xattrs -no-progress -quiet >/dev/null
	read -r wall user sys <"$tmp/time"
	printf '| %s | %s | %.1f MiB | %.0f s | %.0f s | %s-%s |\n' "$name" "$block" \
		"$(awk -v b="$(stat -c %s "$tmp/img")" 'BEGIN { print b / 1048576 }')" "$wall" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$before" "$(cut -d' ' -f1 /proc/loadavg)"
	rm -f "$tmp/img"
done
