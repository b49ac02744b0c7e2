#!/usr/bin/env python3
"""Synthetic touchpoint event stream (SPEC §2/§6 CSV or NDJSON), deterministic for a seed.

The model lives in one place, bench/gen/gen.c (Python alone cannot write 50 M events at
300 k+/s); this front end checks the options, builds that program once into a cache
(keyed by the source's hash, so it never runs a stale model) and runs it. Set TP_GEN to use
an already built `tpgen` instead (CMake builds one: build/bench/tpgen).
"""

import argparse
import datetime
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "gen", "gen.c")


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def channels(text):
    value = int(text)
    if not 8 <= value <= 12:
        raise argparse.ArgumentTypeError("must be 8..12")
    return value


def day(text):
    try:
        datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not a YYYY-MM-DD date") from exc
    if len(text) != 10:
        raise argparse.ArgumentTypeError("not a YYYY-MM-DD date")
    return text


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Write a realistic, time-ordered stream of touchpoint events.",
        epilog="Columns: event_id,customer_id,type,timestamp,channel,campaign,source,"
        "medium,interaction,cost,value,currency,name,previous_id,day,amount,"
        "trait.plan,trait.country (NDJSON: the same keys, traits as an object).")
    p.add_argument("--customers", type=positive,
                   help="customers arriving over the period (default 10000, or enough "
                   "for --events)")
    p.add_argument("--events", type=positive,
                   help="stop after this many events (about 3.5 per customer)")
    p.add_argument("--days", type=positive, default=30,
                   help="length of the period in days (default 30)")
    p.add_argument("--start", type=day, default="2024-01-01",
                   help="first day, UTC (default 2024-01-01)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--channels", type=channels, default=10,
                   help="number of channels, 8..12 (default 10)")
    p.add_argument("--format", choices=("csv", "ndjson"), default="csv")
    p.add_argument("--timestamp-us", action="store_true",
                   help="integer timestamp_us instead of RFC 3339 timestamp")
    p.add_argument("--out", default="-", help="output file, - for stdout (default)")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.days > 3650:
        p.error("--days must be <= 3650")
    return args


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "touchpoint")
    try:
        os.makedirs(path, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    path = os.path.join(tempfile.gettempdir(), "touchpoint-gen-%d" % os.getuid())
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def generator():
    """The tpgen binary: $TP_GEN, else one built from gen.c into the cache."""
    if os.environ.get("TP_GEN"):
        return os.environ["TP_GEN"]
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    binary = os.path.join(cache_dir(), "tpgen-" + digest)
    if os.access(binary, os.X_OK):
        return binary
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("gen.py: no C compiler found: set CC, or TP_GEN to a built tpgen")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(binary), prefix=".tpgen-")
    os.close(fd)
    try:
        subprocess.run([cc, "-std=c11", "-O2", "-D_POSIX_C_SOURCE=200809L", "-o", tmp,
                        SOURCE, "-lm"], check=True)
        os.replace(tmp, binary)
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        sys.exit("gen.py: building %s failed: %s" % (SOURCE, exc))
    return binary


def main(argv):
    args = parse_args(argv)
    cmd = [generator(), "--days", str(args.days), "--start", args.start,
           "--seed", str(args.seed), "--channels", str(args.channels),
           "--format", args.format, "--out", args.out]
    if args.customers is not None:
        cmd += ["--customers", str(args.customers)]
    if args.events is not None:
        cmd += ["--events", str(args.events)]
    if args.timestamp_us:
        cmd.append("--timestamp-us")
    sys.stdout.flush()
    # Python ignores SIGPIPE and exec keeps ignored signals: give tpgen the default back
    # so `gen.py | head` ends quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
