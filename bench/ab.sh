#!/usr/bin/env bash
# bench/ab.sh: interleaved A/B of two touchpointd binaries, ingesting onto copies of one
# store: the comparison docs/BENCHMARKS.md's "Session 7" and "Session 8" sections use. On a
# shared VM the same run moves 10-20 % within minutes, so only interleaved rounds compare.
#
#   bench/ab.sh --store DIR --a DAEMON --b DAEMON [--rounds N] [--events N]
#               [--clients N] [--build DIR] [--tmp DIR] [--a-conf LINE] [--b-conf LINE]
#
# Each round copies DIR (a stopped daemon's state directory, e.g. one bench/run.sh --full
# would preload, kept) to a scratch directory, syncs, starts the daemon there, waits for its
# compactor to be idle (bench/lib.sh `settle`: merges the copy had pending), streams
# --events (default 10 M) fresh events from tpgen (after the store's range) with --clients
# (default 4) tpbench-ingest clients, and prints one markdown row: events/s, p50/p99 batch
# latency, the writer thread's runqueue wait during the run (schedstat: runnable, not
# running), the daemon's CPU per thread kind, and how many log segments were left unflushed
# 1 s after the run. --a-conf/--b-conf add a touchpointd.conf line to one side (the same
# binary twice compares a setting, e.g. --b-conf 'writer_priority = 1'). The copy is
# deleted after each run; every daemon is stopped on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build
tmpbase=${TMPDIR:-/tmp}
store= a= b= aconf= bconf=
rounds=2 events=10000000 clients=4

while [ $# -gt 0 ]; do
	case $1 in
	--store) store=$2; shift ;;
	--a) a=$2; shift ;;
	--b) b=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--events) events=$2; shift ;;
	--clients) clients=$2; shift ;;
	--build) build=$2; shift ;;
	--a-conf) aconf=$2; shift ;;
	--b-conf) bconf=$2; shift ;;
	--tmp) tmpbase=$2; shift ;;
	-h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "ab.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done
if [ -z "$store" ] || [ -z "$a" ] || [ -z "$b" ] || [ ! -d "$store/store" ]; then
	echo "ab.sh: --store DIR (with DIR/store), --a and --b are required" >&2
	exit 64
fi
tpgen=$build/bench/tpgen
ingest=$build/bench/tpbench-ingest
for x in "$tpgen" "$ingest" "$a" "$b"; do
	[ -x "$x" ] || { echo "ab.sh: $x missing" >&2; exit 66; }
done

. "$repo/bench/work.sh"
work_begin "$tmpbase" tpab

# A free loopback port for the daemon's metrics (so a stray daemon cannot answer for it).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# metric, settle
. "$repo/bench/lib.sh"

# Seconds a thread of pid has waited runnable on a runqueue (schedstat's second field).
runq_wait() { # pid comm
	local f
	f=$(grep -lx "$2" /proc/"$1"/task/*/comm 2>/dev/null | head -1)
	[ -n "$f" ] && awk '{ printf "%.2f", $2 / 1e9 }' "${f%/comm}/schedstat" || echo 0
}

run() { # label daemon round conf-line
	local d=$work/state
	rm -rf "$d"
	cp -a "$store" "$d"
	sync
	printf 'metrics = http://127.0.0.1:%s/metrics\n' "$port" >"$work/touchpointd.conf"
	[ -z "$4" ] || printf '%s\n' "$4" >>"$work/touchpointd.conf"
	"$2" -d -f "$work/touchpointd.conf" --state-dir "$d" --endpoint "ipc://$d/t.sock" \
		2>>"$work/daemon.log" &
	dpid=$!
	for _ in $(seq 1 100); do
		[ -S "$d/t.sock" ] && curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break
		sleep 0.1
	done
	local row waited rq0 rq1
	waited=$(settle)
	rq0=$(runq_wait "$dpid" tp-writer)
	row=$("$tpgen" --events "$events" --seed $((800 + $3)) --start 2024-06-01 --timestamp-us |
		"$ingest" -e "ipc://$d/t.sock" -c "$clients" --chunk 1000000 --expect-new)
	rq1=$(runq_wait "$dpid" tp-writer)
	sleep 1
	local segs cpu
	segs=$(metric '^touchpointd_store_log_segments$')
	segs=${segs%.*}
	cpu=$(for t in /proc/"$dpid"/task/*; do cat "$t/stat"; done 2>/dev/null |
		awk -v hz="$(getconf CLK_TCK)" '{
			name = $2; sub(/^\(/, "", name); sub(/\)$/, "", name); sub(/:.*/, "", name)
			c[name] += ($14 + $15) / hz
		} END { for (n in c) if (c[n] >= 0.05) printf "%s %.1f s; ", n, c[n] }')
	kill -TERM "$dpid"
	wait "$dpid" || true
	dpid=
	rm -rf "$d"
	echo "$row" | awk -F'|' -v l="$1" -v r="$3" -v s="$segs" -v c="$cpu" -v w="$waited" \
		-v q0="$rq0" -v q1="$rq1" \
		'{printf "| %s | %s | %s | %.0f | %s | %s | %.2f | %s | %s |\n", r, l, w, $8, $9, $10, q1 - q0, s, c}'
}

echo "| round | daemon | compactor idle after s | events/s | p50 ms | p99 ms | writer runqueue wait s | log segments after 1 s | daemon CPU by thread |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
for r in $(seq 1 "$rounds"); do
	# Alternate which goes first, so a drifting machine does not favour one side.
	if [ $((r % 2)) = 1 ]; then
		run A "$a" "$r" "$aconf"
		run B "$b" "$r" "$bconf"
	else
		run B "$b" "$r" "$bconf"
		run A "$a" "$r" "$aconf"
	fi
done
