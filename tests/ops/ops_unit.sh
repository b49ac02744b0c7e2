#!/bin/sh
# ops_unit: systemd-analyze verify on touchpointd.service (a copy whose ExecStart is the
# built binary) and the offline security rating, which must be 2.0 or better.
# Usage: ops_unit.sh UNIT TOUCHPOINTD
set -u
unit=$1
bin=$2
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: no systemd-analyze"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The unit as installed, but pointing at the binary of this build.
sed -e "s|^ExecStart=[^ ]*touchpointd|ExecStart=$bin|" "$unit" >"$tmp/touchpointd.service"
grep -q "^ExecStart=$bin " "$tmp/touchpointd.service" || { echo "FAIL: ExecStart not rewritten"; exit 1; }

# Facts the daemon and clients rely on.
for line in 'Type=notify' 'User=touchpoint' 'Group=touchpoint' 'StateDirectory=touchpoint' \
	'RuntimeDirectory=touchpointd' 'RuntimeDirectoryMode=0750' 'ConfigurationDirectory=touchpoint' \
	'RestartPreventExitStatus=78' 'Restart=on-failure' 'WatchdogSec=30s' \
	'ExecReload=/bin/kill -HUP $MAINPID'; do
	grep -qxF "$line" "$tmp/touchpointd.service" || { echo "FAIL: unit lacks '$line'"; exit 1; }
done

if ! systemd-analyze verify --man=no "$tmp/touchpointd.service" >"$tmp/verify" 2>&1; then
	echo "FAIL: systemd-analyze verify"; cat "$tmp/verify"; exit 1
fi
if [ -s "$tmp/verify" ]; then
	echo "FAIL: systemd-analyze verify complains:"; cat "$tmp/verify"; exit 1
fi

systemd-analyze security --offline=yes --no-pager "$tmp/touchpointd.service" >"$tmp/sec" 2>&1
line=$(grep 'Overall exposure level' "$tmp/sec")
[ -n "$line" ] || { echo "FAIL: no rating"; cat "$tmp/sec"; exit 1; }
score=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9][0-9]*\.[0-9]\).*/\1/p')
[ -n "$score" ] || { echo "FAIL: cannot parse '$line'"; exit 1; }
echo "exposure $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "FAIL: exposure $score > 2.0"; cat "$tmp/sec"; exit 1; }
echo "ops_unit: ok"
