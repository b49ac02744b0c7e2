#!/usr/bin/env python3
"""bench_gen_check: the generator's output keeps the promises of bench/gen.py's model
(deterministic, time-ordered, SPEC §6 columns, the stated mix of customers and events)."""

import collections
import csv
import io
import json
import os
import subprocess
import sys

GEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gen.py")
HEADER = ("event_id,customer_id,type,timestamp,channel,campaign,source,medium,interaction,"
          "cost,value,currency,name,previous_id,day,amount,trait.plan,trait.country")
CHANNELS10 = {"paid_search", "organic_search", "social_paid", "social_organic", "email",
              "display", "affiliate", "direct", "referral", "video"}
INTERACTIONS = {"impression", "click", "visit", "email_open", "other"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def gen(*args):
    r = subprocess.run([sys.executable, GEN] + list(args), stdout=subprocess.PIPE,
                       check=True)
    return r.stdout.decode("utf-8")


def main():
    out = gen("--customers", "40000", "--seed", "7")
    check(out == gen("--customers", "40000", "--seed", "7"), "same seed, same output")
    check(out != gen("--customers", "40000", "--seed", "8"), "another seed, another output")
    lines = out.splitlines()
    check(lines[0] == HEADER, "header is " + HEADER)
    rows = list(csv.DictReader(io.StringIO(out)))

    ids = set()
    last = ""
    kinds = collections.Counter()
    per = collections.defaultdict(collections.Counter)
    run = collections.defaultdict(int)  # touches since the last conversion, per customer
    longest = 0
    anon_ids, aliased = set(), set()
    chans = set()
    for r in rows:
        check(r["event_id"] not in ids, "unique event id " + r["event_id"])
        ids.add(r["event_id"])
        check(r["timestamp"] >= last, "time order at " + r["event_id"])
        last = r["timestamp"]
        check(r["timestamp"].endswith("Z") and len(r["timestamp"]) == 27,
              "RFC 3339 timestamp " + r["timestamp"])
        k = r["type"]
        kinds[k] += 1
        cid = r["customer_id"]
        if k == "spend":
            check(cid == "" and r["day"] == r["timestamp"][:10] and r["amount"] != ""
                  and r["channel"] != "" and r["currency"] == "EUR",
                  "spend row " + r["event_id"])
            continue
        check(0 < len(cid) <= 256, "customer id " + r["event_id"])
        per[cid][k] += 1
        if cid.startswith("anon-"):
            anon_ids.add(cid)
        if k == "touch":
            check(r["channel"] != "" and r["interaction"] in INTERACTIONS,
                  "touch row " + r["event_id"])
            chans.add(r["channel"])
            run[cid] += 1
            longest = max(longest, run[cid])
        elif k == "conversion":
            check(r["name"] in ("purchase", "signup") and float(r["value"]) >= 0,
                  "conversion row " + r["event_id"])
            run[cid] = 0
        elif k == "identify":
            check(r["trait.plan"] in ("free", "pro", "enterprise")
                  and len(r["trait.country"]) == 2, "identify row " + r["event_id"])
        elif k == "alias":
            check(r["previous_id"].startswith("anon-"), "alias row " + r["event_id"])
            aliased.add(r["previous_id"])

    known = [c for c in per if not c.startswith("anon-")]
    n = len(known)
    share = lambda pred: sum(1 for c in known if pred(per[c])) / n
    conv = share(lambda p: p["conversion"] > 0)
    print("events %d, customers %d, kinds %s" % (len(rows), n, dict(kinds)))
    print("converting %.2f%%, identified %.1f%%, aliased %.1f%%, longest path %d"
          % (100 * conv, 100 * share(lambda p: p["identify"] > 0),
             100 * len(aliased) / n, longest))
    check(0.03 <= conv <= 0.05, "3-5 % of customers convert")
    check(share(lambda p: p["conversion"] > 1) > 0, "some repeat buyers")
    check(0.5 <= share(lambda p: p["identify"] > 0) <= 0.7, "about 60 % identified")
    check(0.03 <= len(aliased) / n <= 0.07, "about 5 % aliased")
    check(aliased <= anon_ids, "alias joins an id seen browsing")
    check(10 <= longest <= 40, "long-tailed paths, at most 40 touches")
    check(chans == CHANNELS10, "the 10 default channels")
    check(kinds["spend"] > 0, "daily spend")

    out = gen("--events", "5000", "--channels", "12", "--seed", "3")
    rows = list(csv.DictReader(io.StringIO(out)))
    check(len(rows) == 5000, "--events 5000 gives 5000 events")
    check(len({r["channel"] for r in rows if r["type"] == "touch"}) == 12, "--channels 12")

    nd = gen("--events", "5000", "--channels", "12", "--seed", "3", "--format", "ndjson",
             "--timestamp-us")
    objs = [json.loads(line) for line in nd.splitlines()]
    check(len(objs) == 5000, "NDJSON has the same events")
    check([o["event_id"] for o in objs] == [r["event_id"] for r in rows],
          "NDJSON and CSV carry the same stream")
    check(all(isinstance(o["timestamp_us"], int) for o in objs), "integer timestamp_us")
    check(all("traits" in o for o in objs if o["type"] == "identify"), "NDJSON traits object")
    us = gen("--events", "50", "--timestamp-us").splitlines()
    check(us[0] == HEADER.replace(",timestamp,", ",timestamp_us,"), "timestamp_us column")
    check(all(line.split(",")[3].isdigit() for line in us[1:]), "integer timestamp_us values")

    bad = subprocess.run([sys.executable, GEN, "--channels", "7"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    check(bad.returncode != 0, "--channels 7 refused")
    if failures:
        print("%d checks failed" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
