#!/usr/bin/env bash
# bench/run.sh: touchpoint's ingest and attribution benchmarks against real touchpointd
# processes in temporary state directories; results as markdown on stdout, progress on stderr.
#
#   bench/run.sh [--full] [--build DIR] [--tmp DIR] [--preload N] [--events N]
#                [--attr-sizes "N ..."] [--map-size SIZE] [--no-perf]
#
# Default: a quick run (1 M preloaded events, 200 k per ingest run, attribute on 200 k and
# 1 M). --full: 50 M preloaded, 2 M per ingest run, attribute on 1 M, 10 M and 50 M.
# Every daemon started here is stopped and every store deleted on exit; loopback/IPC only.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
args="$*"
build=$repo/build
tmpbase=${TMPDIR:-/tmp}
preload=1000000
events=200000
attr_sizes="200000 1000000"
sender_events=200000
single_events=2000
perf_on=1
step_timeout=1800
# The daemon's default: the map grows by itself under load (--map-size to pin it).
map_size=1G

while [ $# -gt 0 ]; do
	case $1 in
	--full)
		preload=50000000 events=2000000 attr_sizes="1000000 10000000 50000000"
		sender_events=1000000 single_events=5000 step_timeout=7200
		;;
	--build) build=$2; shift ;;
	--tmp) tmpbase=$2; shift ;;
	--preload) preload=$2; shift ;;
	--events) events=$2; shift ;;
	--attr-sizes) attr_sizes=$2; shift ;;
	--no-perf) perf_on=0 ;;
	--map-size) map_size=$2; shift ;;
	-h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done

tpgen=$build/bench/tpgen
ingest=$build/bench/tpbench-ingest
append=$build/bench/tpbench-lmdb-append
walk=$build/bench/tpbench-walk
daemon=$build/daemon/touchpointd
cli=$build/clients/touchpoint
for b in "$tpgen" "$ingest" "$append" "$walk" "$daemon" "$cli"; do
	if [ ! -x "$b" ]; then
		echo "run.sh: $b missing: cmake --build $build --target tpgen tpbench-ingest" \
			"tpbench-lmdb-append tpbench-walk touchpointd touchpoint_cli" >&2
		exit 66
	fi
done
command -v perf >/dev/null 2>&1 || perf_on=0

work=$(mktemp -d "$tmpbase/tpbench.XXXXXX")
dpid=
anon_pid=
port=$((20000 + $$ % 20000))
cleanup() {
	local status=$?
	if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
		kill -TERM "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
	fi
	# Keep the daemon's log for a post-mortem when a step failed.
	if [ "$status" != 0 ] && [ -s "$work/daemon.log" ]; then
		cp "$work/daemon.log" "$tmpbase/tpbench-daemon.log"
		echo "run.sh: failed ($status); touchpointd's log: $tmpbase/tpbench-daemon.log" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run.sh: $*" >&2; }

# The machine and the moment: the figures mean little without them.
machine() {
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
	echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "- disk ($work): $(df -hT "$work" | awk 'NR == 2 {print $1, $2, $3 " total"}')"
	echo "- kernel: $(uname -sr)"
	echo "- load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

start_daemon() { # state dir
	local dir=$1 i
	mkdir -p "$dir"
	cat >"$work/touchpointd.conf" <<EOF
metrics = http://127.0.0.1:$port/metrics
log_level = warning
map_size = $map_size
EOF
	"$daemon" -d -f "$work/touchpointd.conf" --state-dir "$dir" \
		--endpoint "ipc://$dir/t.sock" 2>>"$work/daemon.log" &
	dpid=$!
	endpoint=ipc://$dir/t.sock
	for i in $(seq 1 200); do
		if "$cli" -e "$endpoint" status >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.05
	done
	log "touchpointd did not come up; its log:"
	tail -20 "$work/daemon.log" >&2
	exit 69
}

stop_daemon() {
	kill -TERM "$dpid"
	wait "$dpid" || { log "touchpointd exited with $?"; exit 70; }
	dpid=
}

hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$dpid/status"; }

cpu_s() { # user+system seconds of the daemon so far
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$dpid/stat"
}

# metric, settle
. "$repo/bench/lib.sh"

# One ingest run: events from tpgen (seed, start day) into the running daemon.
ingest_run() { # label clients mode count seed start [extra tpbench-ingest args]
	local label=$1 clients=$2 mode=$3 count=$4 seed=$5 start=$6
	shift 6
	local c0 s0 e0 n0 w0 y0 row c1 s1 e1 n1 w1 y1 waited
	waited=$(settle)
	log "$label: the compactor was idle after $waited s"
	printf '%s\t%s\n' "$label" "$waited" >>"$work/settle.tsv"
	c0=$(cpu_s)
	w0=$(metric '^touchpointd_store_write_lock_wait_seconds_total')
	y0=$(metric '^touchpointd_store_commit_sync_seconds_total')
	s0=$(metric '^touchpointd_commit_duration_seconds_sum')
	n0=$(metric '^touchpointd_commit_duration_seconds_count')
	e0=$(metric '^touchpointd_commit_events_sum')
	row=$("$tpgen" --events "$count" --seed "$seed" --start "$start" --timestamp-us |
		timeout "$step_timeout" "$ingest" -e "$endpoint" --mode "$mode" -c "$clients" \
			--label "$label" --expect-new --chunk 500000 "$@")
	c1=$(cpu_s)
	w1=$(metric '^touchpointd_store_write_lock_wait_seconds_total')
	y1=$(metric '^touchpointd_store_commit_sync_seconds_total')
	s1=$(metric '^touchpointd_commit_duration_seconds_sum')
	n1=$(metric '^touchpointd_commit_duration_seconds_count')
	e1=$(metric '^touchpointd_commit_events_sum')
	echo "$row"
	# Where the time went, from the daemon's own clocks.
	awk -v row="$row" -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v n0="$n0" \
		-v n1="$n1" -v e0="$e0" -v e1="$e1" -v w0="$w0" -v w1="$w1" -v y0="$y0" \
		-v y1="$y1" -v hwm="$(hwm)" -v label="$label" \
		-v load="$(cut -d' ' -f1 /proc/loadavg)" '
		BEGIN {
			c = c1 - c0; s = s1 - s0; n = n1 - n0; e = e1 - e0
			split(row, f, "|"); wall = f[7] + 0; ev = f[6] + 0
			printf "%s\t%.2f\t%.1f\t%.0f%%\t%.0f%%\t%.0f%%\t%.2f\t%.0f\t%s\t%s\n", label,
			    ev ? c / ev * 1e6 : 0, n ? s / n * 1e3 : 0, wall ? 100 * s / wall : 0,
			    wall ? 100 * (w1 - w0) / wall : 0, wall ? 100 * (y1 - y0) / wall : 0,
			    ev ? c / wall : 0, n ? e / n : 0, hwm, load
		}' >>"$work/breakdown.tsv"
}

breakdown_table() {
	echo
	echo "Where the daemon's time went (from /proc/PID/stat and its /metrics):"
	echo
	echo "| run | daemon CPU µs/event | mean group commit ms | writer busy (commit time / wall) | … waiting for the write lock | … in mdb_txn_commit | daemon cores used | events per commit | touchpointd VmHWM | load (1 min) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' \
		"$work/breakdown.tsv"
	: >"$work/breakdown.tsv"
	if [ -s "$work/settle.tsv" ]; then
		echo
		printf 'Each run started once the compactor was idle (`settle` in bench/lib.sh); it waited:'
		awk -F'\t' '{printf " %s %s s;", $1, $2}' "$work/settle.tsv"
		echo
		: >"$work/settle.tsv"
	fi
}

attribute_run() { # label -> appends a row to attr.tsv (daemon running on $state)
	local label=$1 t0 t1 c0 c1 anon i runs=""
	# The first query warms the page cache; three more are timed and the median is
	# reported (the walk too, walk_run): one query of each moved 20 % between two full
	# runs of the same build on this VM (session 19), enough to flip the ≤ 3× target.
	# VmHWM counts the mapped store; the engine's own memory is anonymous: its peak is
	# sampled during the first run (the same query), so the sampler cannot slow the timed ones.
	anon_peak_start
	timeout "$step_timeout" "$cli" -e "$endpoint" attribute --model all --format json \
		>"$work/attr.json"
	anon=$(anon_peak_stop)
	for i in 1 2 3; do
		c0=$(cpu_s)
		t0=$(date +%s.%N)
		timeout "$step_timeout" "$cli" -e "$endpoint" attribute --model all --format json \
			>"$work/attr.json"
		t1=$(date +%s.%N)
		c1=$(cpu_s)
		runs="$runs$(awk -v t0="$t0" -v t1="$t1" -v a="$c0" -v b="$c1" \
			'BEGIN { printf "%.2f %.2f", t1 - t0, b - a }')
"
	done
	# median by wall time, with its CPU; then the three walls
	printf '%s' "$runs" | sort -n | awk -v l="$label" -v m="$(hwm)" \
		-v ld="$(cut -d' ' -f1 /proc/loadavg)" -v a="$anon" \
		'{ w[NR] = $1; c[NR] = $2 }
		END { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s %s %s\n", l, w[2], m, ld, a, c[2],
		      w[1], w[2], w[3] }' >>"$work/attr.tsv"
}

anon_peak_start() { # samples the daemon's RssAnon every 50 ms into $work/anon.peak
	echo 0 >"$work/anon.peak"
	(
		peak=0
		# Builtins only, but for sleep (and mv on a new peak): a fork every 20 ms would
		# load the machine.
		while [ -e "/proc/$dpid/status" ]; do
			while read -r k v _; do
				if [ "$k" = RssAnon: ] && [ "$v" -gt "$peak" ]; then
					peak=$v
					# renamed in place: a kill mid-write had left the file empty
					echo "$peak" >"$work/anon.peak.new" &&
						mv -f "$work/anon.peak.new" "$work/anon.peak"
				fi
			done <"/proc/$dpid/status" 2>/dev/null || true
			sleep 0.05
		done
	) &
	anon_pid=$!
}

anon_peak_stop() { # -> "N MiB"
	kill "$anon_pid" 2>/dev/null || true
	wait "$anon_pid" 2>/dev/null || true
	awk '{printf "%.0f MiB", $1 / 1024}' "$work/anon.peak"
}

walk_run() { # label state -> appends the median (by walk s) of three walk rows to walk.md
	local i
	: >"$work/walk3.md"
	for i in 1 2 3; do
		"$walk" --store "$2/store" --label "$1" >>"$work/walk3.md"
	done
	# rows: | label | stored | records | walk s | ...: field 5 of a |-split is the walk
	sort -t'|' -k5,5n "$work/walk3.md" | sed -n 2p >>"$work/walk.md"
	awk -F'|' -v l="$1" '{ w = w (NR > 1 ? " " : "") sprintf("%.3f", $5 + 0) } END { print l "\t" w }' \
		"$work/walk3.md" >>"$work/walk3.tsv"
}

load_store() { # count
	"$tpgen" --events "$1" --seed 1 --timestamp-us |
		timeout "$step_timeout" "$ingest" -e "$endpoint" -c 4 --label "load $1" \
			--chunk 500000 --expect-new
}

echo "# touchpoint benchmarks"
echo
machine
echo
echo "Command: \`bench/run.sh $args\` (preload $preload events, $events events per ingest run," \
	"attribute on: $attr_sizes)."
echo

log "LMDB append ceiling"
echo "## LMDB append ceiling (durable commits of 10 000 sequential keys, fresh env)"
echo
"$append" --header
append_row=$("$append" --dir "$work/lmdb" --records 2000000 --value-size 120)
echo "$append_row"
rm -rf "$work/lmdb"
append_rate=$(echo "$append_row" | awk -F'|' '{print $6 + 0}')
echo

echo "## Ingest into an empty store (fresh daemon per run, batches of 1000)"
echo
"$ingest" --header
: >"$work/breakdown.tsv"
seed=100
for c in 1 4 16; do
	log "ingest, empty store, $c clients"
	start_daemon "$work/empty$c"
	ingest_run "empty, $c clients" "$c" batch "$events" $((seed + c)) 2024-01-01 |
		tee -a "$work/ingest.md"
	stop_daemon
	rm -rf "$work/empty$c"
done
breakdown_table
echo

echo "## Store of $preload events: attribute, walk, then ingest on top"
echo
state=$work/big
start_daemon "$state"
log "preloading $preload events"
"$ingest" --header
load_store "$preload"
: >"$work/attr.tsv"
: >"$work/walk.md"
: >"$work/walk3.tsv"
for n in $attr_sizes; do
	if [ "$n" = "$preload" ]; then
		log "attribute on the preloaded store"
		stop_daemon # a fresh process: its VmHWM is the query's, not the load's
		start_daemon "$state"
		# The load leaves merges behind: a query beside them measured them too.
		log "attribute on $n: the compactor was idle after $(settle) s"
		attribute_run "$n"
		stop_daemon
		walk_run "$n" "$state"
		start_daemon "$state"
	fi
done
: >"$work/breakdown.tsv"
for c in 1 4 16; do
	log "ingest on $preload stored, $c clients"
	ingest_run "$preload stored, $c clients" "$c" batch "$events" $((200 + c)) 2024-02-01 |
		tee -a "$work/ingest.md"
done
log "buffered sender and single-event round trips"
ingest_run "$preload stored, tp_sender" 1 sender "$sender_events" 301 2024-03-01
ingest_run "$preload stored, tp_send n=1" 1 single "$single_events" 302 2024-03-01
breakdown_table
# The profile gets a run of its own: sampling cost this VM 2-21 % of ingest (session 8),
# which the measured runs above must not carry (until session 7 the 4-client run did).
if [ "$perf_on" = 1 ]; then
	log "profile: 4 clients under perf (not in the tables)"
	perf record -F 499 -o "$work/perf.data" -p "$dpid" >/dev/null 2>&1 &
	perfpid=$!
	"$tpgen" --events "$events" --seed 250 --start 2024-03-15 --timestamp-us |
		timeout "$step_timeout" "$ingest" -e "$endpoint" -c 4 --label profile \
			--chunk 500000 --expect-new >/dev/null
	kill -INT "$perfpid" 2>/dev/null || true
	wait "$perfpid" 2>/dev/null || true
fi
stop_daemon
rm -rf "$state"
echo

# Target of the issue: >= 500 k durable events/s with 4 clients at 50 M stored.
echo "Ratio to the LMDB append ceiling ($append_rate records/s):"
echo
awk -F'|' -v lim="$append_rate" '$2 ~ /clients/ { gsub(/^ +| +$/, "", $2)
	printf "- %s: %.0f events/s = %.2f of the ceiling\n", $2, $8, (lim ? $8 / lim : 0) }' \
	"$work/ingest.md"
echo

if [ -s "$work/perf.data" ]; then
	echo "Profile of touchpointd during a 4-client run on the preloaded store, after the measured ones (perf, flat):"
	echo
	echo '```'
	perf report -i "$work/perf.data" --stdio --sort dso,sym --percent-limit 1.5 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -30
	echo '```'
	echo
fi

for n in $attr_sizes; do
	[ "$n" = "$preload" ] && continue
	log "attribute on $n events"
	state=$work/attr$n
	start_daemon "$state"
	load_store "$n" >/dev/null
	stop_daemon
	start_daemon "$state"
	log "attribute on $n: the compactor was idle after $(settle) s"
	attribute_run "$n"
	stop_daemon
	walk_run "$n" "$state"
	rm -rf "$state"
done

echo "## Attribution (\`touchpoint attribute --model all --format json\`, warm) vs a bare walk"
echo
echo "Medians of three warm queries and of three walks (each row's three are in the last two columns)."
echo
echo "| stored events | attribute s | daemon CPU s | touchpointd VmHWM | heap peak (RssAnon) | load | walk s | scan, 1 thread s | scan, all cores s | attribute / walk | attribute / scan (all cores) | attribute s, three | walk s, three |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
# walk.md rows: | label | stored | records | walk s | rec/s | customers | events | scan s |
#               parallel customers | parallel scan s |
awk -F'\t' 'FILENAME == ARGV[1] { a[$1] = $2; m[$1] = $3; l[$1] = $4; h[$1] = $5; c[$1] = $6
		t[$1] = $7; next }
	FILENAME == ARGV[2] { w3[$1] = $2; next }
	{ split($0, f, "|"); k = f[2]; gsub(/ /, "", k)
	  if (k in a) printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1fx | %.1fx | %s | %s |\n",
	      f[3] + 0, a[k], c[k], m[k], h[k], l[k], f[5] + 0, f[9] + 0, f[11] + 0,
	      (f[5] > 0 ? a[k] / f[5] : 0),
	      (f[11] > 0 ? a[k] / f[11] : 0), t[k], w3[k] }' \
	"$work/attr.tsv" "$work/walk3.tsv" "$work/walk.md"
echo
echo "Bare walk and journey scan (tpbench-walk, daemon stopped):"
echo
"$walk" --header
cat "$work/walk.md"
echo
echo "- load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
