#!/bin/sh
# ops_deb: cpack -G DEB builds a package whose control data and file list are right.
# Registered only for Release builds with prefix /usr and no sanitizer.
# Usage: ops_deb.sh BUILD_DIR
set -u
build=$1
fail() { echo "FAIL: $*"; exit 1; }
for t in cpack dpkg-deb dpkg-shlibdeps; do
	command -v $t >/dev/null 2>&1 || { echo "SKIP: no $t"; exit 77; }
done
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/log" 2>&1) || { cat "$tmp/log"; fail "cpack"; }
deb=$(ls "$tmp"/touchpoint_*_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no .deb in $tmp"

dep=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $dep"
for d in libnng1 liblmdb0 libprotobuf-c1 libsystemd0 libc6 systemd; do
	printf '%s' "$dep" | grep -q "$d" || fail "Depends lacks $d"
done
printf '%s' "$dep" | grep -q 'libasan\|libubsan' && fail "sanitizer runtime in Depends"
[ "$(dpkg-deb -f "$deb" Package)" = touchpoint ] || fail "package name"

dpkg-deb -I "$deb" >"$tmp/info"
for s in postinst prerm postrm conffiles; do
	grep -q " $s" "$tmp/info" || fail "control archive lacks $s"
done
dpkg-deb -e "$deb" "$tmp/control"
grep -qx '/etc/touchpoint/touchpointd.conf' "$tmp/control/conffiles" || fail "conffiles"
grep -q 'systemd-sysusers' "$tmp/control/postinst" || fail "postinst does not create the user"

dpkg-deb -c "$deb" | awk '{ print $6 }' >"$tmp/files"
for f in ./usr/sbin/touchpointd ./usr/bin/touchpoint ./usr/include/touchpoint/touchpoint.h \
	./usr/lib/x86_64-linux-gnu/pkgconfig/touchpoint.pc ./lib/systemd/system/touchpointd.service \
	./usr/lib/sysusers.d/touchpointd.conf ./usr/lib/tmpfiles.d/touchpointd.conf \
	./etc/touchpoint/touchpointd.conf ./usr/share/man/man8/touchpointd.8.gz \
	./usr/share/man/man5/touchpointd.conf.5.gz ./usr/share/man/man1/touchpoint.1.gz \
	./usr/share/doc/touchpoint/operations.md; do
	grep -qx "$f" "$tmp/files" || fail "package lacks $f"
done
grep -q '^./usr/lib/x86_64-linux-gnu/libtouchpoint.so.0' "$tmp/files" || fail "package lacks libtouchpoint.so.0"
echo "ops_deb: ok"
