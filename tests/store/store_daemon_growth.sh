#!/bin/sh
# The map-growth crash through the daemon: touchpointd with map_size = 1M imports 200 k
# generated events (the map grows about ten times) while queries run; it must not crash.
#
#   store_daemon_growth.sh TOUCHPOINTD TOUCHPOINT_CLI GEN_PY [EVENTS]
set -u

daemon=$1 cli=$2 gen=$3 events=${4:-200000}
work=$(mktemp -d /tmp/tpgrowd.XXXXXX) || exit 1
dpid= qpid=
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	[ -n "$dpid" ] && kill -KILL "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() {
	echo "store_daemon_growth: $*" >&2
	tail -20 "$work/daemon.log" >&2
	exit 1
}

ep=ipc://$work/d/t.sock
mkdir "$work/d"
printf 'map_size = 1M\nrun_events = 1024\nmetrics =\nlog_level = notice\n' >"$work/conf"
python3 "$gen" --events "$events" --seed 7 --out "$work/ev.csv" || fail "gen.py failed"
cust=$(sed -n 2p "$work/ev.csv" | cut -d, -f2)

"$daemon" -d -f "$work/conf" --state-dir "$work/d" --endpoint "$ep" 2>"$work/daemon.log" &
dpid=$!
i=0
until "$cli" -e "$ep" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 200 ] && kill -0 "$dpid" 2>/dev/null || fail "touchpointd did not come up"
	sleep 0.1
done

# Readers while the store grows: status (stats), journeys and full scans (attribute).
(
	while :; do
		"$cli" -e "$ep" status >/dev/null 2>&1
		"$cli" -e "$ep" journey "$cust" >/dev/null 2>&1
		"$cli" -e "$ep" attribute --model last_touch --format csv >/dev/null 2>&1
	done
) &
qpid=$!

"$cli" -e "$ep" import "$work/ev.csv" >"$work/import.out" 2>&1 || {
	cat "$work/import.out" >&2
	fail "import failed (touchpointd alive: $(kill -0 "$dpid" 2>/dev/null && echo yes || echo no))"
}
kill "$qpid" && wait "$qpid" 2>/dev/null
qpid=
grep -q "$events accepted, 0 duplicates, 0 rejected" "$work/import.out" ||
	fail "unexpected import summary: $(cat "$work/import.out")"

"$cli" -e "$ep" status --format json >"$work/status.json" 2>&1 || fail "status failed"
grep -q "\"total\": *$events" "$work/status.json" || fail "status: $(cat "$work/status.json")"
bytes=$(sed -n 's/.*"store_bytes": *\([0-9]*\).*/\1/p' "$work/status.json")
[ -n "$bytes" ] && [ "$bytes" -gt $((8 * 1048576)) ] || fail "store_bytes $bytes: the map did not grow"

kill -TERM "$dpid"
wait "$dpid"
rc=$?
dpid=
[ "$rc" -eq 0 ] || fail "touchpointd exited with $rc"
echo "store_daemon_growth: $events events through a 1M map, $bytes bytes stored"
