#!/bin/sh
# run.sh: times attr_markov() on random path tables (bench/markov/markov_bench.c) and prints
# a table. Usage: [ORDERS="1 2 3"] run.sh [BUILD_DIR] [PATHS] [CHANNELS...]
# (defaults: build, 1000000, 10 100 500)
set -eu
build=${1:-build}
paths=${2:-1000000}
[ $# -ge 2 ] && shift 2 || shift $#
channels=${*:-10 100 500}
orders=${ORDERS:-1 2 3}
bin=$build/bench/markov/markov_bench
[ -x "$bin" ] || { echo "run.sh: $bin missing: cmake --build $build --target markov_bench" >&2; exit 66; }

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-9s %-6s %-9s %s\n' paths channels order seconds max_rss_mib
for k in $channels; do
	for order in $orders; do
		out=$("$bin" "$paths" "$k" "$order" 2>&1) || { echo "$out" >&2; exit 70; }
		secs=$(printf '%s\n' "$out" | awk -F'\t' '$1 ~ /^[0-9]+$/ { print $4 }')
		rss=$(printf '%s\n' "$out" | sed -n 's/^max RSS \([0-9]*\) MiB/\1/p')
		printf '%-9s %-9s %-6s %-9s %s\n' "$paths" "$k" "$order" "$secs" "$rss"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
