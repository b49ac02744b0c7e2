# bench/lib.sh: what run.sh and ab.sh share, sourced by both. Each caller sets `port`, the
# loopback port of its daemon's /metrics.

# Without curl every metric reads 0 and `settle` would pass at once: refuse instead.
if ! command -v curl >/dev/null 2>&1; then
	echo "bench: curl is needed to read touchpointd's /metrics (apt-get install curl)" >&2
	exit 69
fi

# The value of the metric lines whose name matches a regex, summed; 0.000000 when none.
metric() { # regex
	{ curl -s "http://127.0.0.1:$port/metrics" || true; } |
		awk -v re="$1" '$0 !~ /^#/ && $1 ~ re {s += $NF} END {printf "%.6f", s}'
}

# Waits until the compactor has caught up with what earlier steps wrote: at most one log
# segment (the writer's), no merge running and no compaction chunk committed, at two checks
# 2 s apart (the daemon's quiet merges begin 3 s after the last write); at most $1 seconds
# (default 900). Prints the seconds waited, with "(still busy)" if it gave up. So a
# measured ingest run pays for the merges its own events cause, not for those of the
# preload or the run before it, which would otherwise share the disk with it at a moment
# chosen by chance. (Until session 21 it looked at the chunks alone, which did not count a
# merge's chunks of copies: at 50 M events a merge's last ≈ 10 s, and the attribute runs
# met it.)
settle() { # [max seconds]
	local max=${1:-900} t0=$SECONDS k0 k1 segs merging idle=0
	k0=$(metric '^touchpointd_store_compaction_chunks_total$')
	while [ $((SECONDS - t0)) -lt "$max" ]; do
		sleep 2
		k1=$(metric '^touchpointd_store_compaction_chunks_total$')
		segs=$(metric '^touchpointd_store_log_segments$')
		merging=$(metric '^touchpointd_store_merges_running$')
		if [ "$k1" = "$k0" ] && [ "${segs%.*}" -le 1 ] && [ "${merging%.*}" = 0 ]; then
			# Twice in a row: the quiet merges start 3 s after the last write.
			if [ "$idle" = 1 ]; then
				echo "$((SECONDS - t0))"
				return 0
			fi
			idle=1
		else
			idle=0
		fi
		k0=$k1
	done
	echo "$((SECONDS - t0)) (still busy)"
}
