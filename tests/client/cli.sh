#!/usr/bin/env bash
# Integration tests of the touchpoint CLI and libtouchpoint against a real touchpointd in a
# temporary state directory. Usage: cli.sh TOUCHPOINT TOUCHPOINTD TEST_LIB SCENARIO
set -euo pipefail
tp=$1 tpd=$2 testlib=$3 scenario=$4
dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$dir/d.log" ] && tail -20 "$dir/d.log" >&2; exit 1; }
ep="ipc://$dir/t.sock"
export TOUCHPOINT_ENDPOINT=$ep

start() {
	"$tpd" -d --state-dir "$dir/state" --endpoint "$ep" 2>"$dir/d.log" &
	pid=$!
	for _ in $(seq 100); do
		"$tp" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "touchpointd did not come up"
}
mkdir -p "$dir/state"
# expect CODE CMD...: runs CMD, stdout to $dir/out, stderr to $dir/err, checks the exit code.
expect() {
	local want=$1 rc=0
	shift
	"$@" >"$dir/out" 2>"$dir/err" || rc=$?
	[ "$rc" -eq "$want" ] || { cat "$dir/err" >&2; fail "$* exited $rc, wanted $want"; }
}
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$dir/out" "$1"; }

case $scenario in
help)
	for cmd in "" status send import journey attribute paths "export" report backup; do
		expect 0 "$tp" $cmd --help
		grep -q Usage "$dir/out" || fail "$cmd --help prints no usage"
		expect 0 "$tp" $cmd --version
		grep -q '^touchpoint [0-9]' "$dir/out" || fail "$cmd --version"
	done
	expect 64 "$tp" nosuchcommand
	expect 64 "$tp" status --format yaml
	expect 64 "$tp" send touch --bogus
	grep -q "'--bogus'" "$dir/err" || fail "send: the unknown option is not named"
	expect 64 "$tp" journey alice --lookback
	grep -q "'--lookback'" "$dir/err" || fail "journey: the option without its value is not named"
	expect 64 "$tp" report -Z
	grep -q "'-Z'" "$dir/err" || fail "report: the unknown short option is not named"
	# Another command's option is named itself, not the value after it.
	for c in "report -o $dir/r --top 5:--top" "export paths --top 5:--top" \
		"paths --model markov:--model" "report --format=json -o $dir/r:--format" \
		"attribute --pdf:--pdf" "paths -o $dir/x:-o"; do
		expect 64 "$tp" ${c%:*}
		grep -q "option '${c##*:}' does not apply to" "$dir/err" || fail "${c%:*}: $(cat "$dir/err")"
	done
	expect 64 "$tp" export paths --format json
	grep -q "export paths writes ChannelAttribution CSV only" "$dir/err" || fail "export --format json: $(cat "$dir/err")"
	expect 64 "$tp" attribute --lookback 3w
	# Every exit code the commands use is in their help.
	expect 0 "$tp" --help
	for code in 64 65 66 69 70 71 73 74 75 77; do
		grep -q "\b$code\b" "$dir/out" || fail "touchpoint --help leaves out $code"
	done
	# Without --lookback the daemon's setting applies: the help says so, not a fixed 30d.
	for c in attribute journey; do
		expect 0 "$tp" $c --help
		grep -q "default: the" "$dir/out" && grep -q "daemon's default_lookback" "$dir/out" ||
			fail "$c --help: $(grep -A1 lookback "$dir/out")"
	done
	expect 0 "$tp" import --help
	for code in 65 66; do
		grep -q "\b$code\b" "$dir/out" || fail "import --help leaves out $code"
	done
	# A time outside SPEC's years is told as such, not as one that cannot be read.
	for t in 1969-12-31 2201-01-01 1970-01-01T00:00:00+01:00 @7289654400000000; do
		expect 64 "$tp" send touch -c a --channel x -t "$t"
		grep -q "'$t' is out of the supported range 1970-2200" "$dir/err" || fail "-t $t: $(cat "$dir/err")"
		expect 64 "$tp" attribute --from "$t"
		grep -q "'$t' is out of the supported range 1970-2200" "$dir/err" || fail "--from $t: $(cat "$dir/err")"
	done
	expect 64 "$tp" send touch -c a --channel x -t 1969-12-31Tnoon
	grep -q "is not RFC 3339" "$dir/err" || fail "-t 1969-12-31Tnoon: $(cat "$dir/err")"
	# A path table has no times, names or traits: those options are refused, not ignored.
	printf 'path,total_conversions,total_conversion_value,total_null\nemail,1,1,0\n' >"$dir/p.csv"
	for opt in "--lookback 7d" "--from 2024-01-01" "--to 2024-01-01" "--conversion buy" "--by plan"; do
		expect 64 "$tp" attribute --paths "$dir/p.csv" $opt --format json
		grep -q "touchpoint attribute: ${opt% *} does not apply to --paths" "$dir/err" ||
			fail "attribute --paths $opt: $(cat "$dir/err")"
		[ ! -s "$dir/out" ] || fail "attribute --paths $opt printed: $(cat "$dir/out")"
	done
	expect 0 "$tp" attribute --paths "$dir/p.csv" --repeats collapse --level channel
	;;
unavailable)
	expect 69 "$tp" -e "ipc://$dir/none.sock" status
	grep -q "cannot reach touchpointd at ipc://$dir/none.sock" "$dir/err" || fail "message: $(cat "$dir/err")"
	[ ! -s "$dir/out" ] || fail "data on stdout"
	expect 69 "$tp" send touch -c a --channel x
	# A bad endpoint is a bad option value: a usage error, not bad data.
	expect 64 "$tp" -e bogus status
	grep -q 'bad endpoint "bogus"' "$dir/err" || fail "-e bogus: $(cat "$dir/err")"
	expect 64 env TOUCHPOINT_ENDPOINT=nosuch://x "$tp" journey alice
	;;
permission)
	# A socket this user may not open: 77 and what to do, not "is touchpointd running?".
	# Root opens any socket, so it runs the client as nobody; others chmod their own.
	start
	as=()
	if [ "$(id -u)" = 0 ]; then
		command -v setpriv >/dev/null 2>&1 || { echo "SKIP: no setpriv"; exit 77; }
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	else
		chmod 000 "$dir/t.sock"
	fi
	expect 77 "${as[@]}" "$tp" status
	grep -q "permission denied on touchpointd's socket at $ep: add this user to the socket's group" \
		"$dir/err" || fail "message: $(cat "$dir/err")"
	! grep -q "is touchpointd running" "$dir/err" || fail "told to start the daemon: $(cat "$dir/err")"
	# A path file this user may not read: 77 as for import, not 66 (no input).
	printf 'path,total_conversions,total_conversion_value,total_null\r\nemail,1,1,0\r\n' \
		>"$dir/p.csv"
	[ "$(id -u)" = 0 ] || chmod 000 "$dir/p.csv"
	expect 77 "${as[@]}" "$tp" attribute --paths "$dir/p.csv"
	grep -q "Permission denied" "$dir/err" || fail "paths file: $(cat "$dir/err")"
	;;
lib)
	start
	"$testlib" "$ep" || fail "test_lib"
	;;
reload_relative)
	# A relative state directory is made absolute once: the socket path in it, and a
	# reload that changes nothing warns about nothing.
	mkdir -p "$dir/rel"
	printf 'metrics =\n' >"$dir/rel.conf"
	(cd "$dir" && exec "$tpd" -d -f rel.conf --state-dir rel) 2>"$dir/d.log" &
	pid=$!
	export TOUCHPOINT_ENDPOINT="ipc://$dir/rel/touchpointd.sock"
	for _ in $(seq 100); do "$tp" status >/dev/null 2>&1 && break; sleep 0.1; done
	expect 0 "$tp" status
	grep -q "listening url=ipc://$dir/rel/touchpointd.sock" "$dir/d.log" ||
		fail "socket path not absolute: $(cat "$dir/d.log")"
	kill -HUP "$pid"
	for _ in $(seq 50); do grep -q 'configuration reloaded' "$dir/d.log" && break; sleep 0.1; done
	grep -q 'configuration reloaded' "$dir/d.log" || fail "no reload: $(cat "$dir/d.log")"
	! grep -q 'changed; it takes effect' "$dir/d.log" || fail "spurious: $(cat "$dir/d.log")"
	;;
small_messages)
	# A daemon whose max_message_bytes is below the batches clients send: they learn the
	# limit from its answer and send smaller batches instead of timing out.
	printf 'metrics =\nmax_message_bytes = 8K\nmax_batch_events = 50\n' >"$dir/small.conf"
	"$tpd" -d -f "$dir/small.conf" --state-dir "$dir/state" --endpoint "$ep" 2>"$dir/d.log" &
	pid=$!
	for _ in $(seq 100); do "$tp" status >/dev/null 2>&1 && break; sleep 0.1; done
	"$testlib" "$ep" small || fail "test_lib small"
	python3 -c '
print("type,customer_id,timestamp,channel,campaign")
for i in range(500):
    print("touch,bot,2024-05-%02dT10:%02d:%02dZ,email,campaign-%d" % (i % 28 + 1, i % 60, i * 7 % 60, i))
' >"$dir/bot.csv"
	expect 0 timeout 60 "$tp" import "$dir/bot.csv" --format json
	[ "$(json_get '["accepted"]')" = 500 ] || fail "import over the limit: $(cat "$dir/out")"
	grep -q "request too large" "$dir/d.log" || fail "the daemon did not log the refusals"
	# Its journey is larger than a reply: read in pages, whole and in order.
	expect 0 "$tp" journey bot --lookback 1d --format json
	python3 - "$dir/out" "$dir/bot.csv" <<'PY' || fail "journey in pages: $(head -c 300 "$dir/out")"
import csv, json, sys
d = json.load(open(sys.argv[1]))
ts = [e["timestamp"] for e in d["events"]]
assert len(d["events"]) == 500, len(d["events"])
assert ts == sorted(ts)
want = sorted(r["timestamp"] for r in csv.DictReader(open(sys.argv[2])))
assert [t[:19] for t in ts] == [t[:19] for t in want], (ts[:3], want[:3])
assert len(d["paths"]) == 1 and not d["paths"][0]["converting"], d["paths"]
PY
	expect 0 "$tp" journey bot --lookback 1d --format csv
	[ "$(grep -c ',touch,' "$dir/out")" = 500 ] || fail "journey csv in pages: $(head -3 "$dir/out")"
	# While the customer's events keep coming (earlier in time, so every page would shift),
	# each read is the journey as of its first page: complete, in order, never exit 75.
	touch "$dir/feeding"
	(
		k=0
		while [ -e "$dir/feeding" ]; do
			awk -v k=$k 'BEGIN {
				print "type,customer_id,timestamp,channel,campaign"
				for (i = 0; i < 100; i++) {
					t = k * 100 + i
					printf "touch,bot,2024-04-30T%02d:%02d:%02dZ,display,late\n",
					    int(t / 3600) % 24, int(t / 60) % 60, t % 60
				}
			}' >"$dir/feed.csv"
			"$tp" import "$dir/feed.csv" >/dev/null 2>"$dir/feed.err" ||
				{ cat "$dir/feed.err" >&2; exit 1; }
			k=$((k + 1))
		done
	) &
	feeder=$!
	for k in 1 2 3 4 5 6; do
		expect 0 "$tp" journey bot --lookback 1d --format json
		python3 - "$dir/out" <<'PY' || fail "journey while fed, read $k: $(head -c 300 "$dir/out")"
import json, sys
d = json.load(open(sys.argv[1]))
ts = [e["timestamp"] for e in d["events"]]
ids = [e["event_id"] for e in d["events"]]
assert len(ts) >= 500 and ts == sorted(ts) and len(set(ids)) == len(ids), len(ts)
PY
	done
	rm -f "$dir/feeding"
	wait "$feeder" || fail "a send while the journey was read failed"
	expect 0 "$tp" journey bot --lookback 1d --format json
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["events"]) > 500' \
		"$dir/out" || fail "no event arrived while the journey was read"
	# Unlimited lookback: one path of 500 touches, over a reply on its own: named.
	expect 75 "$tp" journey bot --lookback 0
	grep -q "paths: the journey's paths alone take" "$dir/err" || fail "paths too large: $(cat "$dir/err")"
	# A path table larger than a reply: paths --top 0 reads it in pages, as export does.
	python3 -c '
import itertools
ch = ["search", "social", "email", "display", "affiliate", "direct"]
print("type,customer_id,timestamp,channel")
for n, combo in enumerate(itertools.product(ch, repeat=4)):
    for i, c in enumerate(combo):
        print("touch,p%d,2024-06-01T10:%02d:00Z,%s" % (n, i, c))
    print("conversion,p%d,2024-06-01T11:00:00Z," % n)
' >"$dir/many.csv"
	expect 0 "$tp" import "$dir/many.csv"
	expect 0 "$tp" paths --top 0 --from 2024-06-01 --to 2024-06-02 --format json
	python3 - "$dir/out" <<'PY' || fail "paths --top 0 in pages: $(head -c 300 "$dir/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["distinct_paths"] == 1296 and len(d["paths"]) == 1296, (d["distinct_paths"], len(d["paths"]))
assert len({tuple(p["path"]) for p in d["paths"]}) == 1296
PY
	;;
status)
	start
	expect 0 "$tp" send touch -c alice --channel email -t 2024-05-01T10:00:00Z
	grep -q '^stored ' "$dir/out" || fail "send output"
	expect 0 "$tp" send conversion -c alice --value 12.5 --currency EUR -t 2024-05-02 -i conv-1
	expect 0 "$tp" send conversion -c alice --value 12.5 --currency EUR -t 2024-05-02 -i conv-1 --format json
	[ "$(json_get '["duplicates"]')" = 1 ] || fail "duplicate not reported"
	expect 0 "$tp" send identify -c alice --trait plan=pro --trait country=fr
	expect 0 "$tp" send alias -c alice --previous-id anon-7
	expect 0 "$tp" send spend --channel email --day 2024-05-01 --amount 100 -t 2024-05-01
	expect 65 "$tp" send touch -c alice
	grep -q "channel" "$dir/err" || fail "violation field not named"
	expect 0 "$tp" status --format json
	python3 - "$dir/out" <<'PY' || fail "status json shape"
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["version", "uptime_s", "events", "duplicates", "customers", "store_bytes"], list(d)
assert list(d["events"]) == ["touch", "conversion", "identify", "alias", "spend", "total"]
assert d["events"]["touch"] == 1 and d["events"]["conversion"] == 1 and d["events"]["total"] == 5, d
assert d["duplicates"] == 1, d
PY
	expect 0 "$tp" status --format csv
	grep -q $'^events.total,5\r$' "$dir/out" || fail "status csv"
	expect 0 "$tp" status
	grep -q '^version' "$dir/out" || fail "status table"
	# Output that cannot be written: 74 and why, from every command alike.
	if [ -c /dev/full ]; then
		for c in "status" "status --format json" "attribute" "attribute --format csv" \
			"export paths" "journey alice" "--help" "attribute --help"; do
			rc=0
			"$tp" $c >/dev/full 2>"$dir/err" || rc=$?
			[ "$rc" -eq 74 ] || fail "$c >/dev/full exited $rc"
			grep -qx 'touchpoint: writing the output: No space left on device' "$dir/err" ||
				fail "$c >/dev/full: $(cat "$dir/err")"
		done
	fi
	# A second touchpointd on the same state directory (another socket) is refused and
	# leaves the first one serving.
	rc=0
	timeout 20 "$tpd" -d --state-dir "$dir/state" --endpoint "ipc://$dir/t2.sock" \
		2>"$dir/d2.log" || rc=$?
	[ "$rc" -eq 1 ] || fail "second daemon on one state dir exited $rc"
	grep -q "is in use by another process (pid $pid)" "$dir/d2.log" ||
		fail "second daemon: $(cat "$dir/d2.log")"
	expect 0 "$tp" status --format csv
	grep -q $'^events.total,5\r$' "$dir/out" || fail "first daemon after the second's refusal"
	# backup: into an empty directory made beforehand; never over one that is not empty.
	mkdir "$dir/bk"
	expect 0 "$tp" backup "$dir/bk" --format json
	[ "$(json_get '["events"]')" = 5 ] || fail "backup events"
	mkdir "$dir/bk2"
	expect 0 "$tp" backup "$dir/bk2" --format csv
	python3 - "$dir/out" "$dir/bk2" <<'PY' || fail "backup csv: $(cat -A "$dir/out")"
import sys
b = open(sys.argv[1], "rb").read()
assert b == b"dir,bytes,events\r\n" + sys.argv[2].encode() + b"," + b.split(b",")[-2] + b",5\r\n", b
PY
	[ -s "$dir/bk/data.mdb" ] || fail "backup wrote no data.mdb"
	expect 73 "$tp" backup "$dir/bk"
	grep -q "FAILED_PRECONDITION: dir: $dir/bk exists and is not an empty directory" "$dir/err" ||
		fail "backup over a backup: $(cat "$dir/err")"
	expect 73 "$tp" backup "$dir/no/such"
	grep -q "no/such: cannot resolve its parent directory" "$dir/err" || fail "backup, missing parent: $(cat "$dir/err")"
	# Every command's CSV is RFC 4180 with CRLF line ends (send, import and backup had LF).
	expect 0 "$tp" send alias -c alice --previous-id anon-7 -i al-1 -t 2024-05-03 --format csv
	[ "$(cat -A "$dir/out")" = $'event_id,accepted,duplicates^M$\nal-1,1,0^M$' ] ||
		fail "send csv: $(cat -A "$dir/out")"
	;;
import_csv)
	start
	cat >"$dir/ev.csv" <<'CSV'
customer_id,type,timestamp,channel,campaign,value,trait.plan
c1,touch,2024-05-01T10:00:00Z,email,"spring, 2024",,
c1,touch,2024-05-01T11:00:00Z,search,,,
c1,conversion,2024-05-01T12:00:00Z,,,30,
c2,touch,2024-05-02T10:00:00Z,social,,,
c2,identify,2024-05-02T10:00:01Z,,,,pro
CSV
	expect 0 "$tp" import --format json "$dir/ev.csv"
	[ "$(json_get '["accepted"]')" = 5 ] || fail "first import: $(cat "$dir/out")"
	expect 0 "$tp" import --format csv "$dir/ev.csv"
	[ "$(cat -A "$dir/out")" = $'rows,accepted,duplicates,rejected,retries^M$\n5,0,5,0,0^M$' ] ||
		fail "import csv: $(cat -A "$dir/out")"
	expect 0 "$tp" import --format json --batch 2 "$dir/ev.csv"
	[ "$(json_get '["accepted"]')" = 0 ] && [ "$(json_get '["duplicates"]')" = 5 ] ||
		fail "second import: $(cat "$dir/out")"
	gzip -c "$dir/ev.csv" >"$dir/ev.csv.gz"
	expect 0 "$tp" import --format json "$dir/ev.csv.gz"
	[ "$(json_get '["duplicates"]')" = 5 ] || fail "gz import: $(cat "$dir/out")"
	expect 0 "$tp" import --format json - <"$dir/ev.csv"
	[ "$(json_get '["duplicates"]')" = 5 ] || fail "stdin import"
	expect 0 "$tp" status --format json
	[ "$(json_get '["events"]["total"]')" = 5 ] || fail "stored twice: $(cat "$dir/out")"
	expect 66 "$tp" import "$dir/missing.csv"
	;;
import_bad)
	start
	{
		echo "event_id,customer_id,type,timestamp_us,channel,value"
		for i in $(seq 1 30); do echo "e$i,c$i,touch,17145216000000$i,email,"; done
		echo "bad-1,c31,touch,1714521600000031,,"          # line 32: no channel (daemon)
		echo "bad-2,c32,conversion,1714521600000032,,abc"  # line 33: value (parse)
		echo "bad-3,c33,touch,1714521600000033,\"x\"y,"    # line 34: CSV quoting
		for i in $(seq 34 50); do echo "e$i,c$i,conversion,17145216000000$i,,5"; done
	} >"$dir/bad.csv"
	expect 65 "$tp" import --batch 10 --format json "$dir/bad.csv"
	[ "$(json_get '["accepted"]')" = 47 ] || fail "accepted: $(cat "$dir/out")"
	[ "$(json_get '["rejected"]')" = 3 ] || fail "rejected: $(cat "$dir/out")"
	grep -q "bad.csv:32: .*channel" "$dir/err" || fail "line 32 not named: $(cat "$dir/err")"
	grep -q "bad.csv:33: value" "$dir/err" || fail "line 33 not named: $(cat "$dir/err")"
	grep -q "bad.csv:34: csv" "$dir/err" || fail "line 34 not named: $(cat "$dir/err")"
	expect 0 "$tp" status --format json
	[ "$(json_get '["events"]["total"]')" = 47 ] || fail "stored: $(cat "$dir/out")"
	printf 'customer_id,type,timestamp,colour\n' >"$dir/unknown.csv"
	expect 65 "$tp" import "$dir/unknown.csv"
	grep -q "unknown column 'colour'" "$dir/err" || fail "unknown column"
	# Cells quoted in messages cannot drive the terminal: control characters print as '?',
	# and a line break in a quoted cell does not start what looks like another message.
	printf 'customer_id,type,timestamp\nx,"bo\e[2Jgus",2024-01-01\nx,touch,"2024\e]0;t\a"\nx,"a\nb",2024-01-01\n' >"$dir/esc.csv"
	expect 65 "$tp" import "$dir/esc.csv"
	! grep -q $'[\e\a]' "$dir/err" || fail "import passes an escape to the terminal"
	grep -q 'esc.csv:2: type: unknown type "bo?\[2Jgus"$' "$dir/err" || fail "esc.csv:2: $(cat "$dir/err")"
	grep -q 'esc.csv:3: timestamp: .*"2024?\]0;t?"$' "$dir/err" || fail "esc.csv:3: $(cat "$dir/err")"
	grep -q 'esc.csv:4: type: unknown type "a?b"$' "$dir/err" || fail "esc.csv:4: $(cat "$dir/err")"
	[ "$(wc -l <"$dir/err")" -eq 3 ] || fail "esc.csv: $(cat "$dir/err")"
	printf 'customer_id,type,timestamp\nx,touch,1969-12-31T23:59:59Z\nx,touch,noon\n' >"$dir/range.csv"
	expect 65 "$tp" import "$dir/range.csv"
	grep -q 'range.csv:2: timestamp: out of the supported range 1970-2200: "1969-12-31T23:59:59Z"' "$dir/err" ||
		fail "range.csv:2: $(cat "$dir/err")"
	grep -q 'range.csv:3: timestamp: not an RFC 3339 time: "noon"' "$dir/err" || fail "range.csv:3: $(cat "$dir/err")"
	printf 'customer_id,type,timestamp,\e[31mred\n' >"$dir/esccol.csv"
	expect 65 "$tp" import "$dir/esccol.csv"
	grep -q "unknown column '?\[31mred'" "$dir/err" || fail "esccol.csv: $(cat "$dir/err")"
	printf '{"customer_id": "x", "type": "touch", "timestamp": "2024-01-01", "\\u001b[2J": 1}\n' >"$dir/esc.ndjson"
	expect 65 "$tp" import "$dir/esc.ndjson"
	grep -q 'esc.ndjson:1: ?\[2J: unknown key' "$dir/err" || fail "esc.ndjson: $(cat "$dir/err")"
	;;
ndjson)
	start
	cat >"$dir/ev.ndjson" <<'EOF2'
{"customer_id": "n1", "type": "touch", "timestamp": "2024-05-01T10:00:00Z", "channel": "email"}
{"customer_id": "n1", "type": "identify", "timestamp_us": 1714557600000000, "traits": {"plan": "pro"}}

{"customer_id": "n1", "type": "conversion", "timestamp": "2024-05-01T12:00:00Z", "value": 30.5, "name": "purchase"}
{"customer_id": "n1", "type": "touch", "timestamp": "2024-05-01T10:00:00Z", "channel": }
{"customer_id": "n1", "type": "touch", "timestamp": "2024-05-01T10:00:00Z", "colour": "red"}
EOF2
	expect 65 "$tp" import --format json "$dir/ev.ndjson"
	[ "$(json_get '["accepted"]')" = 3 ] && [ "$(json_get '["rejected"]')" = 2 ] ||
		fail "ndjson: $(cat "$dir/out")"
	grep -q "ev.ndjson:5: json" "$dir/err" || fail "line 5: $(cat "$dir/err")"
	grep -q "ev.ndjson:6: colour" "$dir/err" || fail "line 6: $(cat "$dir/err")"
	# The same event from CSV gets the same content id: a duplicate.
	printf 'customer_id,type,timestamp_us,channel\nn1,touch,1714557600000000,email\n' >"$dir/same.csv"
	expect 0 "$tp" import --format json "$dir/same.csv"
	[ "$(json_get '["duplicates"]')" = 1 ] || fail "csv/ndjson ids differ: $(cat "$dir/out")"
	cp "$dir/ev.ndjson" "$dir/ev.jsonl"
	expect 65 "$tp" import --format json "$dir/ev.jsonl"
	[ "$(json_get '["duplicates"]')" = 3 ] || fail "jsonl"
	# A byte order mark, a line of spaces, "traits": null: read as a careful user expects.
	printf '\xef\xbb\xbf{"customer_id": "b1", "type": "touch", "timestamp_us": 5, "channel": "web"}\n   \n{"customer_id": "b1", "type": "identify", "timestamp_us": 6, "traits": null}\n' >"$dir/bom.ndjson"
	expect 0 "$tp" import --format json "$dir/bom.ndjson"
	[ "$(json_get '["accepted"]')" = 2 ] || fail "bom.ndjson: $(cat "$dir/out") $(cat "$dir/err")"
	printf '\xef\xbb\xbfcustomer_id,type,timestamp_us,channel\nb2,touch,5,web\n' >"$dir/bom.csv"
	expect 0 "$tp" import --format json "$dir/bom.csv"
	[ "$(json_get '["accepted"]')" = 1 ] || fail "bom.csv: $(cat "$dir/err")"
	# A NUL in a CSV cell is refused, not cut short there.
	printf 'customer_id,type,timestamp_us,channel\nb3,touch,5,em\0ail\nb3,touch,6,web\n' >"$dir/nul.csv"
	expect 65 "$tp" import --format json "$dir/nul.csv"
	[ "$(json_get '["accepted"]')" = 1 ] && [ "$(json_get '["rejected"]')" = 1 ] ||
		fail "nul.csv: $(cat "$dir/out")"
	grep -q "nul.csv:2: .*NUL byte" "$dir/err" || fail "nul.csv: $(cat "$dir/err")"
	# A damaged .gz is refused before a row of it is read (gzip -dc would stream garbage).
	expect 0 "$tp" status --format json
	before=$(json_get '["events"]["total"]')
	python3 -c '
print("customer_id,type,timestamp_us,channel")
for i in range(3000):
    print("gz%d,touch,%d,web" % (i, i + 1))' | gzip -c >"$dir/ok.csv.gz"
	cp "$dir/ok.csv.gz" "$dir/bad.csv.gz"
	printf '\0\0\0\0' | dd of="$dir/bad.csv.gz" bs=1 seek=2000 conv=notrunc 2>/dev/null
	expect 65 "$tp" import "$dir/bad.csv.gz"
	grep -q "damaged gzip data" "$dir/err" || fail "bad.csv.gz: $(cat "$dir/err")"
	expect 0 "$tp" status --format json
	[ "$(json_get '["events"]["total"]')" = "$before" ] || fail "a damaged .gz stored rows"
	expect 0 "$tp" import --format json "$dir/ok.csv.gz"
	[ "$(json_get '["accepted"]')" = 3000 ] || fail "ok.csv.gz: $(cat "$dir/out")"
	# SIGCHLD ignored (inherited): gzip cannot be waited for, and that is said (exit 71),
	# not taken from an unset wait status.
	noreap=(python3 -c 'import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])')
	expect 71 "${noreap[@]}" "$tp" import "$dir/ok.csv.gz"
	grep -q "ok.csv.gz: cannot wait for gzip -t: No child processes" "$dir/err" ||
		fail "gzip -t not waited for: $(cat "$dir/err")"
	: >"$dir/empty.csv.gz" # not tested ahead: read through gzip -dc
	expect 65 "${noreap[@]}" "$tp" import "$dir/empty.csv.gz"
	grep -q "empty.csv.gz: cannot wait for gzip -dc: No child processes" "$dir/err" ||
		fail "gzip -dc not waited for: $(cat "$dir/err")"
	;;
import_limits)
	# A line of 60 000 keys is refused as the row it cannot be (an event has at most 18 keys,
	# its traits 64) without reading every key: 27 s of duplicate checks it was. And a
	# line of 200 000 short strings takes memory for them, not the rest of the line for
	# each one: over 1 GB it was.
	start
	python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
row = '{"customer_id": "lim", "type": "touch", "timestamp_us": %d, "channel": %s}\n'
with open(d + "/keys.ndjson", "w") as f:
    f.write("{" + ", ".join('"k%d": 1' % i for i in range(60000)) + "}\n")
    f.write(row % (1, '"web"'))
    f.write('{"customer_id": "lim", "type": "identify", "timestamp_us": 2, "traits": {%s}}\n'
            % ", ".join('"t%d": "v"' % i for i in range(65)))
inner = "[" + ",".join(['"a"'] * 64) + "]"
nested = "[" + ",".join(["[" + ",".join([inner] * 64) + "]"] * 50) + "]"
with open(d + "/strings.ndjson", "w") as f:
    f.write(row % (3, nested))
    f.write(row % (4, '"email"'))
PY
	expect 65 "$tp" import --format json "$dir/keys.ndjson"
	[ "$(json_get '["accepted"]')" = 1 ] && [ "$(json_get '["rejected"]')" = 2 ] ||
		fail "keys.ndjson: $(cat "$dir/out")"
	grep -q "^$dir/keys.ndjson:1: json: more than 64 members in an object at byte [0-9]*$" "$dir/err" ||
		fail "keys.ndjson:1: $(cat "$dir/err")"
	grep -q "^$dir/keys.ndjson:3: json: more than 64 members in an object at byte [0-9]*$" "$dir/err" ||
		fail "keys.ndjson:3: $(cat "$dir/err")"
	python3 - "$tp" "$dir/strings.ndjson" "$dir/out" "$dir/err" <<'PY' || fail "strings.ndjson: $(cat "$dir/err")"
import resource, subprocess, sys
tp, path, out, err = sys.argv[1:]
with open(out, "w") as o, open(err, "w") as e:
    rc = subprocess.run([tp, "import", "--format", "json", path], stdout=o, stderr=e).returncode
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
assert rc == 65, rc
assert peak_mb < 256, "peak RSS %.0f MB for a line of 0.8 MB" % peak_mb
PY
	[ "$(json_get '["accepted"]')" = 1 ] && [ "$(json_get '["rejected"]')" = 1 ] ||
		fail "strings.ndjson: $(cat "$dir/out")"
	grep -q "^$dir/strings.ndjson:1: channel: must be a string or a number$" "$dir/err" ||
		fail "strings.ndjson:1: $(cat "$dir/err")"
	;;
import_jobs)
	# ~20 000 generated rows with 150 bad ones scattered: -j 4 and -j 1 must agree on the
	# summary, the rejected lines (in line order) and what the daemon stored.
	start
	python3 "$(dirname "$0")/../../bench/gen.py" --customers 5600 --seed 7 --out "$dir/gen.csv"
	python3 - "$dir/gen.csv" "$dir/big.csv" "$dir/badlines" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
head, body = rows[0], rows[1:]
col = {n: i for i, n in enumerate(head)}
bad, out, k = [], [",".join(head)], 0
for n, r in enumerate(body):
    if n % 101 == 57 and len(bad) < 150 and r[col["type"]] == "touch":
        if k % 3 == 0:
            r[col["channel"]] = ""  # the daemon rejects it
        elif k % 3 == 1:
            r[col["timestamp"]] = "yesterday"  # the parser does
        else:
            r.append("extra")  # a wrong field count
        k += 1
        bad.append(n + 2)
    out.append(",".join('"%s"' % c.replace('"', '""') if "," in c or '"' in c else c for c in r))
assert len(bad) == 150, len(bad)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
open(sys.argv[3], "w").write("\n".join(map(str, bad)) + "\n")
PY
	rows=$(($(wc -l <"$dir/big.csv") - 1))
	[ "$rows" -gt 19000 ] || fail "only $rows rows generated"
	expect 65 "$tp" import -j 4 --batch 500 --format json "$dir/big.csv"
	cp "$dir/out" "$dir/sum4"
	cp "$dir/err" "$dir/err4"
	[ "$(json_get '["rows"]')" = "$rows" ] || fail "-j 4 rows: $(cat "$dir/out")"
	[ "$(json_get '["rejected"]')" = 150 ] || fail "-j 4 rejected: $(cat "$dir/out")"
	[ "$(json_get '["accepted"]')" = $((rows - 150)) ] || fail "-j 4 accepted: $(cat "$dir/out")"
	# The first 100 bad lines, in order, each once; then the count of the rest.
	sed -n 's/^.*big\.csv:\([0-9]*\): .*$/\1/p' "$dir/err4" >"$dir/shown4"
	head -100 "$dir/badlines" | cmp -s - "$dir/shown4" || fail "-j 4 rejected lines: $(head "$dir/err4")"
	grep -qx '\.\.\. 50 more rejected rows not shown' "$dir/err4" || fail "-j 4: $(tail -2 "$dir/err4")"
	grep -q 'big.csv:[0-9]*: touch.channel: ' "$dir/err4" || fail "-j 4: no daemon rejection: $(head -3 "$dir/err4")"
	grep -q 'big.csv:[0-9]*: timestamp: ' "$dir/err4" || fail "-j 4: no parse rejection: $(head -3 "$dir/err4")"
	expect 0 "$tp" status --format json
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["events"], d["duplicates"])' \
		"$dir/out" >"$dir/st4"
	# Again with -j 8: every stored row is a duplicate now.
	expect 65 "$tp" import -j 8 --format json "$dir/big.csv"
	[ "$(json_get '["duplicates"]')" = $((rows - 150)) ] && [ "$(json_get '["accepted"]')" = 0 ] ||
		fail "-j 8 reimport: $(cat "$dir/out")"
	kill -TERM "$pid"
	wait "$pid" || fail "touchpointd exited badly"
	pid=
	rm -rf "${dir:?}/state"
	mkdir "$dir/state"
	start
	expect 65 "$tp" import -j 1 --batch 500 --format json "$dir/big.csv"
	cmp -s "$dir/out" "$dir/sum4" || fail "summaries differ: $(cat "$dir/sum4") vs $(cat "$dir/out")"
	cmp -s "$dir/err" "$dir/err4" || fail "rejections differ: $(diff "$dir/err4" "$dir/err" | head)"
	expect 0 "$tp" status --format json
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["events"], d["duplicates"])' \
		"$dir/out" >"$dir/st1"
	cmp -s "$dir/st1" "$dir/st4" || fail "stored counts differ: $(cat "$dir/st4") vs $(cat "$dir/st1")"
	expect 64 "$tp" import -j 0 "$dir/big.csv"
	expect 64 "$tp" import --jobs 65 "$dir/big.csv"
	;;
journey)
	start
	expect 0 "$tp" send touch -c jo --channel email --campaign spring -t 2024-05-01T10:00:00Z -i j1 \
		--source news --medium mail --interaction click --cost 0.25
	expect 0 "$tp" send touch -c jo --channel search -t 2024-05-01T11:00:00Z -i j2
	expect 0 "$tp" send conversion -c jo --value 30 --currency EUR -t 2024-05-01T12:00:00Z -i j3
	expect 0 "$tp" send touch -c jo --channel social -t 2024-05-03T10:00:00Z -i j4
	expect 0 "$tp" journey jo --format json
	python3 - "$dir/out" <<'PY' || fail "journey json: $(cat "$dir/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["customer_id"] == "jo"
assert [e["event_id"] for e in d["events"]] == ["j1", "j2", "j3", "j4"]
assert d["events"][0]["timestamp"] == "2024-05-01T10:00:00Z"
conv = [p for p in d["paths"] if p["converting"]]
null = [p for p in d["paths"] if not p["converting"]]
assert len(conv) == 1 and conv[0]["channels"] == ["email", "search"] and conv[0]["value"] == 30
assert conv[0]["conversion_event_id"] == "j3"
assert len(null) == 1 and null[0]["channels"] == ["social"]
# Every stored field, under its proto name; SPEC's default name spelled out.
e = d["events"]
assert e[0] == {"event_id": "j1", "customer_id": "jo", "timestamp": "2024-05-01T10:00:00Z",
                "timestamp_us": 1714557600000000, "type": "touch", "channel": "email",
                "campaign": "spring", "source": "news", "medium": "mail",
                "interaction": "click", "cost": 0.25}, e[0]
assert e[1]["interaction"] is None and e[1]["cost"] is None and e[1]["source"] == "", e[1]
assert e[2]["currency"] == "EUR" and e[2]["name"] == "conversion" and e[2]["value"] == 30, e[2]
PY
	expect 0 "$tp" journey jo
	grep -q "email/spring" "$dir/out" || fail "journey table: $(cat "$dir/out")"
	grep -q "email > search" "$dir/out" || fail "journey table paths"
	expect 0 "$tp" journey jo --format csv
	grep -q $'^converting_path,2024-05-01T12:00:00Z,path,,,30,j3,email > search,,,,,,,,,,,\r$' "$dir/out" ||
		fail "journey csv: $(cat "$dir/out")"
	python3 - "$dir/out" <<'PY' || fail "journey csv fields: $(cat "$dir/out")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
ev = {r["event_id"]: r for r in rows if r["record"] == "event"}
j1, j3 = ev["j1"], ev["j3"]
assert (j1["customer_id"], j1["source"], j1["medium"], j1["interaction"], j1["cost"]) == \
    ("jo", "news", "mail", "click", "0.25"), j1
assert (j3["currency"], j3["name"], j3["value"]) == ("EUR", "conversion", "30"), j3
assert all(None not in r for r in rows), "a row with more fields than the header"
PY
	# SPEC's largest identify (32 traits, keys of 64 bytes, values of 256) is stored and
	# comes back whole in CSV; a channel with terminal escapes is shown harmless in tables.
	args=()
	for i in $(seq -w 1 32); do
		args+=(--trait "k$i$(printf 'k%.0s' $(seq 61))=$(printf 'é%.0s' $(seq 128))")
	done
	expect 0 "$tp" send identify -c jt -t 2024-05-01T08:00:00Z "${args[@]}"
	expect 0 "$tp" send touch -c jt --channel $'esc\e]0;x\a' -t 2024-05-01T09:00:00Z
	expect 0 "$tp" journey jt --format csv
	python3 - "$dir/out" <<'PY' || fail "journey csv of the largest identify"
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8", newline="")))
ident = [r for r in rows if r[2] == "identify"][0]
traits = ident[7].split(" ")
assert len(traits) == 32 and all(t.endswith("é" * 128) for t in traits), traits[-1][:80]
t = json.loads(ident[rows[0].index("traits")])
assert len(t) == 32 and all(v == "é" * 128 for v in t.values()), list(t)[:2]
PY
	expect 0 "$tp" journey jt
	! grep -q $'\e' "$dir/out" || fail "journey table passes an escape to the terminal"
	grep -q 'esc?\]0;x?' "$dir/out" || fail "journey table: $(cat "$dir/out")"
	expect 0 "$tp" paths --top 0
	! grep -q $'\e' "$dir/out" || fail "paths table passes an escape to the terminal"
	# export paths takes --format csv, its only format (SPEC §6: every command that prints).
	expect 0 "$tp" export paths
	cp "$dir/out" "$dir/export"
	expect 0 "$tp" export paths --format csv
	cmp -s "$dir/out" "$dir/export" || fail "export paths --format csv: $(cat "$dir/out")"
	grep -q $'^email > search,1,30,0\r$' "$dir/out" || fail "export paths: $(cat "$dir/out")"
	# --out into what is not a regular file writes into it: a FIFO stays a FIFO (renaming
	# over such a target once replaced /dev/full with a file); a link's file is replaced.
	mkfifo "$dir/fifo"
	cat "$dir/fifo" >"$dir/fromfifo" &
	reader=$!
	expect 0 "$tp" export paths --out "$dir/fifo"
	wait "$reader"
	[ -p "$dir/fifo" ] || fail "export --out replaced a FIFO"
	cmp -s "$dir/fromfifo" "$dir/export" || fail "export --out FIFO: $(cat "$dir/fromfifo")"
	echo old >"$dir/target.csv"
	ln -s target.csv "$dir/link.csv"
	expect 0 "$tp" export paths --out "$dir/link.csv"
	[ -L "$dir/link.csv" ] && cmp -s "$dir/target.csv" "$dir/export" || fail "export --out through a link"
	expect 73 "$tp" export paths --out "$dir"
	# Nor do the daemon's messages that quote what it was sent.
	expect 66 "$tp" journey $'no\e]0;such\a'
	! grep -q $'[\e\a]' "$dir/err" || fail "journey NOT_FOUND passes an escape to the terminal"
	grep -q 'NOT_FOUND: no events for customer_id "no?\]0;such?"' "$dir/err" || fail "journey: $(cat "$dir/err")"
	;;
matrix)
	# --matrix prints the Markov transition matrix in every format, from a path file and
	# from the daemon alike: the table after the credits, CSV as a second table.
	printf 'path,total_conversions,total_conversion_value,total_null\nemail > search,3,30,1\nsearch,1,10,2\nsocial > email,2,20,0\n' >"$dir/p.csv"
	check_matrix() {
		expect 0 "$@" --matrix
		grep -q '^transition matrix: markov (order 1)$' "$dir/out" || fail "table: $(cat "$dir/out")"
		grep -Eq '^\(start\) +email +0\.[0-9]{4}$' "$dir/out" || fail "table row: $(cat "$dir/out")"
		expect 0 "$@" --matrix --format csv
		python3 - "$dir/out" <<'PY' || fail "csv: $(cat "$dir/out")"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
cut = rows.index([])
assert rows[0][:3] == ["segment", "model", "channel"] and rows[cut + 1] == ["segment", "model", "from", "to", "probability"], rows
m = {(r[2], r[3]): float(r[4]) for r in rows[cut + 2:]}
assert all(r[1] == "markov" for r in rows[cut + 2:])
assert abs(sum(p for (f, t), p in m.items() if f == "(start)") - 1) < 1e-9, m
assert m[("social", "email")] == 1 and ("search", "(conversion)") in m, m
PY
		expect 0 "$@" --format csv
		! grep -q 'from,to' "$dir/out" || fail "a matrix without --matrix"
	}
	check_matrix "$tp" attribute --paths "$dir/p.csv" -m markov
	# Every model (the default, all) includes markov; a list or preset without it has no
	# matrix to print: a usage error naming --matrix, not a silent table of credits.
	check_matrix "$tp" attribute --paths "$dir/p.csv"
	check_matrix "$tp" attribute --paths "$dir/p.csv" -m all --first-weight 0.3
	for m in linear u_shaped "first_touch,shapley"; do
		expect 64 "$tp" attribute --paths "$dir/p.csv" -m "$m" --matrix
		grep -q "^touchpoint attribute: --matrix needs the markov model, which is not selected$" "$dir/err" ||
			fail "-m $m --matrix: $(cat "$dir/err")"
		[ ! -s "$dir/out" ] || fail "-m $m --matrix printed: $(cat "$dir/out")"
	done
	expect 64 "$tp" attribute --matrix -m linear
	grep -q -- "--matrix needs the markov model" "$dir/err" || fail "attribute -m linear --matrix: $(cat "$dir/err")"
	start
	expect 0 "$tp" send touch -c m1 --channel email -t 2024-05-01T10:00:00Z
	expect 0 "$tp" send touch -c m1 --channel search -t 2024-05-01T11:00:00Z
	expect 0 "$tp" send conversion -c m1 --value 30 -t 2024-05-01T12:00:00Z
	expect 0 "$tp" send touch -c m2 --channel social -t 2024-05-01T10:00:00Z
	expect 0 "$tp" send touch -c m2 --channel email -t 2024-05-01T11:00:00Z
	expect 0 "$tp" send conversion -c m2 --value 20 -t 2024-05-01T12:00:00Z
	check_matrix "$tp" attribute --lookback 0 -m markov,linear
	;;
report)
	# --out must name a directory of its own: '.', '..', '/', '' are usage errors naming
	# --out (64), not bad data (65) or an internal message.
	for o in . .. ./ ../ '' / "$dir/.." "$dir/."; do
		expect 64 "$tp" -e "ipc://$dir/none.sock" report --out "$o"
		grep -q -- "^touchpoint report: --out: " "$dir/err" || fail "--out '$o': $(cat "$dir/err")"
	done
	# An unusable --out is found before the daemon is asked (73, here with no daemon at all
	# rather than 69): a file, a missing parent, a directory that is not a report.
	echo x >"$dir/afile"
	mkdir "$dir/foreign"
	echo x >"$dir/foreign/keep"
	for o in "$dir/afile" "$dir/no/such/r" "$dir/afile/r" "$dir/foreign"; do
		expect 73 "$tp" -e "ipc://$dir/none.sock" report --out "$o"
		grep -q "^touchpoint report: .*$o" "$dir/err" || fail "--out $o: $(cat "$dir/err")"
	done
	[ -f "$dir/foreign/keep" ] || fail "a foreign directory was touched"
	start
	expect 0 "$tp" send touch -c r1 --channel email -t 2024-05-01T10:00:00Z
	expect 0 "$tp" send touch -c r1 --channel search -t 2024-05-01T11:00:00Z
	expect 0 "$tp" send conversion -c r1 --value 30 -t 2024-05-01T12:00:00Z
	expect 64 "$tp" report --out .
	expect 73 "$tp" report --out "$dir/afile"
	if gp=$(command -v gnuplot); then
		# A relative --gnuplot or PATH entry: gnuplot runs in the temporary directory.
		mkdir "$dir/gpbin"
		ln -s "$gp" "$dir/gpbin/gnuplot"
		(cd "$dir" && expect 0 "$tp" report --lookback 0 --gnuplot gpbin/gnuplot --out r1)
		[ -f "$dir/r1/model_comparison.svg" ] || fail "relative --gnuplot: $(cat "$dir/err")"
		(cd "$dir" && PATH="gpbin:$PATH" expect 0 "$tp" report --lookback 0 --out r2)
		[ -f "$dir/r2/model_comparison.svg" ] || fail "relative PATH: $(cat "$dir/err")"
		# The directory's mode follows the umask, as mkdir(1)'s does.
		(umask 027 && expect 0 "$tp" report --lookback 0 --out "$dir/r3")
		[ "$(stat -c %a "$dir/r3")" = 750 ] || fail "umask 027: mode $(stat -c %a "$dir/r3")"
	fi
	;;
paths_restart)
	# The daemon keeps four paged path tables; a fifth concurrent paged read takes the least
	# recently used one. A read whose table went starts again and completes (paths, export
	# to a file); one streaming to standard output cannot, and says so.
	printf 'metrics =\nmax_message_bytes = 8K\nmax_batch_events = 50\n' >"$dir/small.conf"
	"$tpd" -d -f "$dir/small.conf" --state-dir "$dir/state" --endpoint "$ep" 2>"$dir/d.log" &
	pid=$!
	for _ in $(seq 100); do "$tp" status >/dev/null 2>&1 && break; sleep 0.1; done
	python3 -c '
ch = ["search", "email", "social", "display", "affiliate", "direct", "video", "push"]
print("type,customer_id,timestamp,channel,value")
for i in range(1500):
    for k in range(4):
        print("touch,c%d,2024-05-01T10:%02d:%02dZ,%s," % (i, k, i % 60, ch[i >> (3 * k) & 7]))
    if i % 2 == 0:
        print("conversion,c%d,2024-05-01T11:00:%02dZ,,%d" % (i, i % 60, i % 90 + 10))
' >"$dir/paths.csv"
	expect 0 "$tp" import "$dir/paths.csv"
	expect 0 "$tp" paths --top 0 --lookback 0 --format csv
	cp "$dir/out" "$dir/ref.csv"
	[ "$(wc -l <"$dir/ref.csv")" -gt 1000 ] || fail "too few paths: $(wc -l <"$dir/ref.csv")"
	expect 0 "$tp" export paths --lookback 0 --out "$dir/ref-export.csv"
	# paused: starts reader NAME (a command after it) and waits until it holds its first page.
	paused() {
		local name=$1
		shift
		TOUCHPOINT_TEST_PAGE_PAUSE="$dir/$name" "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
		eval "p_$name=$!"
		for _ in $(seq 200); do [ -e "$dir/$name.paused" ] && return 0; sleep 0.05; done
		fail "reader $name did not pause: $(cat "$dir/$name.err")"
	}
	# go NAME WANT: releases reader NAME and checks its exit code.
	go() {
		local rc=0 p
		touch "$dir/$1.go"
		eval "p=\$p_$1"
		wait "$p" || rc=$?
		[ "$rc" -eq "$2" ] || fail "reader $1 exited $rc, wanted $2: $(cat "$dir/$1.err")"
	}
	paused a "$tp" paths --top 0 --lookback 0 --format csv
	paused x "$tp" export paths --lookback 0 --out "$dir/x.csv"
	paused s "$tp" export paths --lookback 0
	for r in b c d e; do paused $r "$tp" paths --top 0 --lookback 0 --format csv; done
	# a, x and s lost their tables to b..e
	go a 0
	grep -q "reading it again from the start" "$dir/a.err" || fail "a: $(cat "$dir/a.err")"
	cmp -s "$dir/a.out" "$dir/ref.csv" || fail "a read again differs from one read"
	go x 0
	cmp -s "$dir/x.csv" "$dir/ref-export.csv" || fail "export read again differs"
	go s 70
	grep -q "snapshot: path table .* is gone" "$dir/s.err" || fail "s: $(cat "$dir/s.err")"
	for r in b c d e; do
		go $r 0
		cmp -s "$dir/$r.out" "$dir/ref.csv" || fail "reader $r differs: $(cat "$dir/$r.err")"
	done
	;;
*)
	fail "unknown scenario $scenario"
	;;
esac
echo "ok $scenario"
