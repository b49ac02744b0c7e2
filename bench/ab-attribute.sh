#!/usr/bin/env bash
# bench/ab-attribute.sh: interleaved A/B of two touchpointd binaries answering the same
# warm `touchpoint attribute` on one store: docs/BENCHMARKS.md's "Session 15" comparison.
# On a shared VM the same query moves 10-20 % within minutes, so only interleaved rounds
# compare.
#
#   bench/ab-attribute.sh --store DIR --a DAEMON --b DAEMON [--rounds N] [--queries N]
#                         [--build DIR] [-- ATTRIBUTE ARGS]
#
# DIR is a stopped daemon's state directory (DIR/store), used in place: a query writes
# nothing, so no copy is made (let its compactor finish first: bench/run.sh's `settle`).
# Each round starts A then B (B then A in even rounds) on DIR, runs --queries (default 3)
# queries (ATTRIBUTE ARGS, default `--model all --format json`), drops the first (cold)
# and prints one markdown row per binary: each warm query's seconds, the daemon's CPU
# seconds for it, and its log's scan_s / models_s. Every daemon is stopped on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build
store= a= b=
rounds=3 queries=3

while [ $# -gt 0 ]; do
	case $1 in
	--store) store=$2; shift ;;
	--a) a=$2; shift ;;
	--b) b=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--queries) queries=$2; shift ;;
	--build) build=$2; shift ;;
	--) shift; break ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "ab-attribute.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done
if [ -z "$store" ] || [ -z "$a" ] || [ -z "$b" ] || [ ! -d "$store/store" ]; then
	echo "ab-attribute.sh: --store DIR (with DIR/store), --a and --b are required" >&2
	exit 64
fi
[ $# -gt 0 ] || set -- --model all --format json
cli=$build/clients/touchpoint
for x in "$cli" "$a" "$b"; do
	[ -x "$x" ] || { echo "ab-attribute.sh: $x is not executable" >&2; exit 66; }
done
if [ "$queries" -lt 2 ]; then
	echo "ab-attribute.sh: --queries must be at least 2 (the first is cold)" >&2
	exit 64
fi

. "$repo/bench/work.sh"
work_begin "${TMPDIR:-/tmp}" tp-abattr
printf 'log_level = info\nmetrics =\n' >"$work/d.conf"
endpoint=ipc://$work/t.sock
hz=$(getconf CLK_TCK)

cpu() { awk -v hz="$hz" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$dpid/stat"; }

one() { # label daemon attribute-args... -> one markdown row
	local label=$1 daemon=$2 i t0 t1 c0 c1 walls="" cpus="" logs
	shift 2
	: >"$work/d.log"
	"$daemon" -d -f "$work/d.conf" --state-dir "$store" --endpoint "$endpoint" \
		2>"$work/d.log" &
	dpid=$!
	for i in $(seq 1 300); do
		"$cli" -e "$endpoint" status >/dev/null 2>&1 && break
		kill -0 "$dpid" 2>/dev/null || { echo "ab-attribute.sh: $daemon exited" >&2; exit 70; }
		sleep 0.1
	done
	for i in $(seq 1 "$queries"); do
		c0=$(cpu)
		t0=$(date +%s.%N)
		"$cli" -e "$endpoint" attribute "$@" >/dev/null
		t1=$(date +%s.%N)
		c1=$(cpu)
		if [ "$i" -gt 1 ]; then
			walls+=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf " %.3f", b - a }')
			cpus+=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf " %.2f", b - a }')
		fi
	done
	kill -TERM "$dpid"
	wait "$dpid" || true
	dpid=
	logs=$(grep 'attribute done' "$work/d.log" | tail -n +2 |
		sed 's/.*scan_s=\([0-9.]*\) models_s=\([0-9.]*\).*/\1 \/ \2/' | paste -sd, -)
	echo "| $label |$walls |$cpus | $logs |"
}

echo "| round, binary | warm query s | daemon CPU s | scan_s / models_s |"
echo "|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then
		one "$r, A" "$a" "$@"
		one "$r, B" "$b" "$@"
	else
		one "$r, B" "$b" "$@"
		one "$r, A" "$a" "$@"
	fi
done
