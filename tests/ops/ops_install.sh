#!/bin/sh
# ops_install: "cmake --install" into a DESTDIR puts every file where it belongs, and a C
# program builds against the installed header and library through pkg-config and runs.
# Usage: ops_install.sh BUILD_DIR PREFIX LIBDIR SBINDIR BINDIR UNITDIR SYSUSERSDIR TMPFILESDIR SYSCONFDIR
set -u
build=$1 prefix=$2 libdir=$3 sbindir=$4 bindir=$5 unitdir=$6 sysusersdir=$7 tmpfilesdir=$8 sysconfdir=$9
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
fail() { echo "FAIL: $*"; exit 1; }
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }

DESTDIR=$root cmake --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cmake --install"; }
abs() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
L=$(abs "$libdir")

missing=0
for f in "$(abs "$sbindir")/touchpointd" "$(abs "$bindir")/touchpoint" \
	"$L/libtouchpoint.so" "$prefix/include/touchpoint/touchpoint.h" "$L/pkgconfig/touchpoint.pc" \
	"$unitdir/touchpointd.service" "$sysusersdir/touchpointd.conf" "$tmpfilesdir/touchpointd.conf" \
	"$sysconfdir/touchpoint/touchpointd.conf" \
	"$prefix/share/doc/touchpoint/examples/touchpointd.conf.example" \
	"$prefix/share/doc/touchpoint/operations.md" \
	"$prefix/share/man/man8/touchpointd.8.gz" "$prefix/share/man/man1/touchpoint.1.gz" \
	"$prefix/share/man/man5/touchpointd.conf.5.gz"; do
	[ -e "$root$f" ] || { echo "missing: $f"; missing=1; }
done
# On Debian (prefix /usr) the exact places of policy.
if [ "$prefix" = /usr ]; then
	ma=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
	for f in /usr/sbin/touchpointd /usr/bin/touchpoint "/usr/lib/$ma/pkgconfig/touchpoint.pc" \
		/lib/systemd/system/touchpointd.service /usr/lib/sysusers.d/touchpointd.conf \
		/etc/touchpoint/touchpointd.conf; do
		[ -e "$root$f" ] || { echo "missing (Debian layout): $f"; missing=1; }
	done
	ls "$root/usr/lib/$ma"/libtouchpoint.so.* >/dev/null 2>&1 || { echo "missing: libtouchpoint.so.N"; missing=1; }
	grep -q '^ExecStart=/usr/sbin/touchpointd -f /etc/touchpoint/touchpointd.conf$' \
		"$root/lib/systemd/system/touchpointd.service" || { echo "unit ExecStart is not /usr/sbin ... /etc"; missing=1; }
fi
[ $missing -eq 0 ] || fail "files missing from the installation (listing in $tmp kept)"

# Build and run a client against the installed files only.
cat >"$tmp/t.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <touchpoint/touchpoint.h>
int main(void) {
	if (strcmp(tp_strerror(TP_INVALID_ARGUMENT), "INVALID_ARGUMENT") != 0) return 1;
	puts(tp_strerror(TP_OK));
	return 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$root$L/pkgconfig"
flags=$(pkg-config --cflags --libs touchpoint) || fail "pkg-config touchpoint"
# shellcheck disable=SC2086
cc -o "$tmp/t" "$tmp/t.c" $flags >"$tmp/cc" 2>&1 || { cat "$tmp/cc"; fail "compile with: $flags"; }
out=$(LD_LIBRARY_PATH="$root$L" "$tmp/t") || fail "the program failed"
[ "$out" = OK ] || fail "tp_strerror(TP_OK) = '$out'"
echo "ops_install: ok"
