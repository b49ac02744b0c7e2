#!/bin/sh
# ops_config: "touchpointd -n" exits 78 naming the line of a bad configuration and prints
# "configuration OK" for a good one, including the shipped example.
# Usage: ops_config.sh TOUCHPOINTD EXAMPLE_CONF MANPAGE
set -u
bin=$1
example=$2
man=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

printf '# fine so far\nmax_batch_events = 1000\nno_such_key = 1\n' >"$tmp/bad.conf"
"$bin" -n -f "$tmp/bad.conf" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] || fail "bad.conf: exit $rc, not 78"
grep -q 'bad.conf:3' "$tmp/out" || fail "bad.conf: the message does not name line 3: $(cat "$tmp/out")"

printf 'map_size = 12X\n' >"$tmp/badval.conf"
"$bin" -n -f "$tmp/badval.conf" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] || fail "badval.conf: exit $rc, not 78"
grep -q 'badval.conf:1' "$tmp/out" || fail "badval.conf: no line number: $(cat "$tmp/out")"
# Not a terminal (as under systemd): an error line, so journalctl -p warning shows it.
grep -q '^<3>touchpointd: .*badval.conf:1' "$tmp/out" || fail "badval.conf: not logged as <3>"

# A listen URL NNG could never listen on is a configuration error too, not a start failure.
printf 'listen = tcp://127.0.0.1:99999\n' >"$tmp/badurl.conf"
"$bin" -n -f "$tmp/badurl.conf" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 78 ] || fail "badurl.conf: exit $rc, not 78"

cat >"$tmp/good.conf" <<'CONF'
# every kind of value
listen = ipc:///tmp/x.sock   # comment after a value
listen = tcp://127.0.0.1:9470
ipc_permissions = 0660
max_message_bytes = 16M
map_size = 2G
sync = full
metrics =
log_level = debug
default_lookback = 7d
CONF
"$bin" -n -f "$tmp/good.conf" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "good.conf: exit $rc: $(cat "$tmp/out")"
grep -q 'configuration OK' "$tmp/out" || fail "good.conf: no 'configuration OK': $(cat "$tmp/out")"

# The shipped file, and the same file with every key uncommented, are both valid.
"$bin" -n -f "$example" >"$tmp/out" 2>&1 || fail "example: $(cat "$tmp/out")"
grep -q 'configuration OK' "$tmp/out" || fail "example: no 'configuration OK'"
sed -n 's/^#\([a-z_]* = .*\)$/\1/p' "$example" >"$tmp/uncommented.conf"
n=$(wc -l <"$tmp/uncommented.conf")
[ "$n" -ge 14 ] || fail "example: only $n keys found"
"$bin" -n -f "$tmp/uncommented.conf" >"$tmp/out" 2>&1 || fail "uncommented example: $(cat "$tmp/out")"

# Every key of config.h is documented in the example and the man page.
for key in state_dir listen ipc_permissions max_message_bytes max_batch_events queue_depth \
	contexts query_threads scan_threads map_size sync run_events metrics log_level default_lookback \
	compactor_nice writer_priority decode_memory; do
	grep -q "^#$key = " "$example" || fail "example lacks $key"
	grep -q "^\.B[IR]* $key " "$man" || fail "man page lacks $key"
done
echo "ops_config: ok"
