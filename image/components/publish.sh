#!/usr/bin/env bash
# Publishes a components tree as OUTDIR/linux-ARCH so that a reader never
# sees half of one tree and half of another: the tree is copied to a new
# hidden directory beside it (stage), finished there, and linux-ARCH, a
# symlink, is swapped to it in one rename (swap). A reader that resolves
# the link once (cairn build does) reads one tree whole. The tree swapped
# out is kept until the next swap (a build may still be reading it); older
# ones are removed.
#
# usage: publish.sh stage OUTDIR ARCH TREE   prints the staged directory
#        publish.sh swap OUTDIR ARCH STAGED
set -euo pipefail
cmd=${1:?usage: publish.sh stage|swap OUTDIR ARCH TREE|STAGED}
out=${2:?}
arch=${3:?}
src=${4:?}
link=$out/linux-$arch

case $cmd in
stage)
	staged=$out/.linux-$arch.$(date +%s%N).$$
	# Interrupted while copying: no half tree is left.
	trap 'rm -rf "$staged"; exit 130' INT
	trap 'rm -rf "$staged"; exit 143' TERM
	cp -a "$src" "$staged"
	trap - INT TERM
	echo "$staged"
	;;
swap)
	[ "$(dirname "$src")" = "$out" ] || { echo "publish.sh: $src is not a staged tree in $out" >&2; exit 1; }
	old=
	if [ -L "$link" ]; then
		old=$(readlink "$link")
	elif [ -e "$link" ]; then
		# A tree from before links: it goes now, once.
		rm -rf "$link"
	fi
	tmp=$out/.linux-$arch.link.$$
	ln -sfn "$(basename "$src")" "$tmp"
	mv -T "$tmp" "$link"
	# Trees staged before the one swapped out are no one's any more; one
	# staged since (another build, still finishing) is left alone.
	if [ -n "$old" ]; then
		keep=${old#.linux-"$arch".}
		keep=${keep%%.*}
		for d in "$out"/.linux-"$arch".[0-9]*; do
			[ -d "$d" ] || continue
			n=$(basename "$d")
			n=${n#.linux-"$arch".}
			n=${n%%.*}
			if [ "$n" -lt "$keep" ]; then rm -rf "$d"; fi
		done
	fi
	;;
*)
	echo "usage: publish.sh stage|swap OUTDIR ARCH TREE|STAGED" >&2
	exit 2
	;;
esac
