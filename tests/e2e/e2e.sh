#!/usr/bin/env bash
# Generated events in, every model out, the path table back in: the numbers must agree.
set -euo pipefail
tpd=$1 tp=$2 gen=$3 compare=$4
dir=$(mktemp -d /tmp/tp-e2e.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
printf 'metrics =\n' >"$dir/tpd.conf"
export TOUCHPOINT_ENDPOINT="ipc://$dir/touchpointd.sock"
"$tpd" -d -f "$dir/tpd.conf" --state-dir "$dir" 2>"$dir/tpd.log" &
pid=$!
for _ in $(seq 200); do "$tp" status >/dev/null 2>&1 && break; sleep 0.05; done

python3 "$gen" --customers 3000 --seed 7 --format csv --out "$dir/events.csv"
rows=$(($(wc -l <"$dir/events.csv") - 1))
"$tp" import "$dir/events.csv" >"$dir/import.txt"
"$tp" status --format json >"$dir/status.json"
python3 - "$dir/status.json" "$rows" <<'PY'
import json, sys
st = json.load(open(sys.argv[1])); rows = int(sys.argv[2])
assert st["events"]["total"] == rows, (st["events"], rows)
assert st["duplicates"] == 0, st
PY
# A second import stores nothing new.
"$tp" import "$dir/events.csv" >/dev/null
"$tp" status --format json >"$dir/status2.json"
python3 - "$dir/status2.json" "$rows" <<'PY'
import json, sys
st = json.load(open(sys.argv[1])); rows = int(sys.argv[2])
assert st["events"]["total"] == rows and st["duplicates"] == rows, st
PY

# Every model from the daemon, then the exported path table fed back without it.
"$tp" attribute --model all --format json >"$dir/daemon.json"
"$tp" export paths --out "$dir/paths.csv"
"$tp" attribute --paths "$dir/paths.csv" --model all --format json >"$dir/paths.json"
python3 "$compare" "$dir/daemon.json" "$dir/paths.json"

# Markov order 2 and a campaign-level run agree the same way.
"$tp" attribute --model markov,linear --order 2 --level campaign --repeats collapse \
	--format json >"$dir/daemon2.json"
"$tp" export paths --level campaign --repeats collapse --out "$dir/paths2.csv"
"$tp" attribute --paths "$dir/paths2.csv" --model markov,linear --order 2 \
	--format json >"$dir/paths2.json"
python3 "$compare" "$dir/daemon2.json" "$dir/paths2.json"

# One customer's journey comes back; an unknown one is "no input".
cust=$(awk -F, 'NR > 1 && $3 == "conversion" { print $2; exit }' "$dir/events.csv")
"$tp" journey "$cust" --format json >"$dir/journey.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["events"], j' "$dir/journey.json"
rc=0; "$tp" journey no-such-customer >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 66 ] || { echo "journey of an unknown customer exited $rc, not 66"; exit 1; }

# The report holds the same numbers as attribute.
"$tp" report --out "$dir/report" >/dev/null
python3 "$compare" "$dir/daemon.json" "$dir/report/attribution.json"
for f in index.html attribution.csv model_comparison.png model_comparison.svg \
	markov_transitions.png path_length.svg top_paths.png spend_roas.png; do
	[ -s "$dir/report/$f" ] || { echo "report lacks $f"; exit 1; }
done
# Restarted with 8 KiB messages, the table no longer fits one reply: export pages through
# it and writes the same bytes.
kill -TERM "$pid"; wait "$pid"; pid=
printf 'metrics =\nmax_message_bytes = 8K\n' >"$dir/small.conf"
"$tpd" -d -f "$dir/small.conf" --state-dir "$dir" 2>"$dir/tpd2.log" &
pid=$!
for _ in $(seq 200); do "$tp" status >/dev/null 2>&1 && break; sleep 0.05; done
"$tp" export paths --out "$dir/paged.csv"
cmp "$dir/paths.csv" "$dir/paged.csv"
[ "$(wc -l <"$dir/paged.csv")" -gt 200 ] || { echo "too few paths to need pages"; exit 1; }
# An export the daemon refuses leaves the previous file as it was, and no temporary file.
rc=0
"$tp" export paths --from 2024-02-01 --to 2024-01-01 --out "$dir/paged.csv" 2>/dev/null || rc=$?
[ "$rc" -eq 65 ] || { echo "refused export exited $rc, not 65"; exit 1; }
cmp "$dir/paths.csv" "$dir/paged.csv"
! ls "$dir"/paged.csv.tmp-* >/dev/null 2>&1 || { echo "export left a temporary file"; exit 1; }
# paths reads the pages too (it exited 75 here, naming max_message_bytes): the same table.
"$tp" paths --top 0 --format csv >"$dir/unpaged.csv"
cmp "$dir/paths.csv" "$dir/unpaged.csv"
# At 36 KiB the attribution still fits one reply but the path table does not: the report
# joins its pages into the same charts.
kill -TERM "$pid"; wait "$pid"; pid=
printf 'metrics =\nmax_message_bytes = 36K\n' >"$dir/mid.conf"
"$tpd" -d -f "$dir/mid.conf" --state-dir "$dir" 2>"$dir/tpd3.log" &
pid=$!
for _ in $(seq 200); do "$tp" status >/dev/null 2>&1 && break; sleep 0.05; done
"$tp" report --out "$dir/report2" >/dev/null 2>&1
for f in path_length.svg top_paths.svg attribution.json; do
	cmp "$dir/report/$f" "$dir/report2/$f" || { echo "paged report differs: $f"; exit 1; }
done
echo "e2e: $rows events, every model agrees between the daemon, the path table and the report"
