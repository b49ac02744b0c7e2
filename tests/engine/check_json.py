#!/usr/bin/env python3
# check_json: reads the engine's JSON on stdin and checks SPEC §6's shape strictly.
import json
import sys


def fail(msg):
    sys.exit("check_json: " + msg)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def totals(t):
    keys = {"conversions", "value", "converting_paths", "null_paths",
            "unattributed_conversions", "unattributed_value"}
    if set(t) != keys or not all(num(v) for v in t.values()):
        fail("totals keys/values: %r" % t)


def models(ms):
    names = set()
    for m in ms:
        if not {"model", "params", "channels"} <= set(m):
            fail("model keys: %r" % sorted(m))
        if not set(m) <= {"model", "params", "channels", "transitions", "estimated", "note"}:
            fail("unexpected model keys: %r" % sorted(m))
        names.add(m["model"])
        for k, v in m["params"].items():
            if not (num(v) or isinstance(v, str)):
                fail("param %s" % k)
        s = 0
        for c in m["channels"]:
            want = {"channel", "conversions", "value", "share"}
            if m["model"] == "markov":
                want.add("removal_effect")
            if set(c) != want:
                fail("channel keys of %s: %r" % (m["model"], sorted(c)))
            s += c["conversions"]
        for t in m.get("transitions", []):
            if set(t) != {"from", "to", "probability"}:
                fail("transition keys")
    return names


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "attribute"
    doc = json.loads(sys.stdin.read())
    if what == "paths":
        if set(doc) != {"distinct_paths", "totals", "paths"}:
            fail("paths keys: %r" % sorted(doc))
        totals(doc["totals"])
        for p in doc["paths"]:
            if set(p) != {"path", "total_conversions", "total_conversion_value", "total_null"}:
                fail("path row keys")
            if not all(isinstance(c, str) for c in p["path"]):
                fail("path channels")
        if not any("em\nail" in p["path"] for p in doc["paths"]):
            fail("escaped names do not round-trip")
        return
    spec = {"lookback_s", "from", "to", "repeats", "level", "totals", "models"}
    if not spec <= set(doc):
        fail("missing keys: %r" % sorted(spec - set(doc)))
    if doc["lookback_s"] != 2592000 or doc["to"] is not None:
        fail("window echo")
    if doc["from"] != "1970-01-01T00:00:00Z":
        fail("from: %r" % doc["from"])
    if doc["repeats"] != "keep" or doc["level"] != "channel":
        fail("repeats/level")
    totals(doc["totals"])
    names = models(doc["models"])
    if "markov" not in names or "first_touch" not in names:
        fail("default models missing: %r" % sorted(names))
    mk = [m for m in doc["models"] if m["model"] == "markov"][0]
    if mk["params"] != {"order": 1} or not mk.get("transitions"):
        fail("markov params/transitions")
    chans = {c["channel"] for c in doc["models"][0]["channels"]}
    if not {"se\"arch\\", "em\nail", "direct\x01", "sociäl 😀"} <= chans:
        fail("channel names: %r" % chans)
    if doc["by_trait"] != "plan" or [s["segment"] for s in doc["segments"]] != ["(none)", "pro"]:
        fail("segments")
    for s in doc["segments"]:
        if set(s) != {"segment", "totals", "models"}:
            fail("segment keys")
        totals(s["totals"])
        models(s["models"])
    if doc["daily_model"] != "position_based" or len(doc["daily"]) == 0:
        fail("daily")
    for d in doc["daily"]:
        if set(d) != {"day", "channel", "conversions", "value"}:
            fail("daily keys")
    if doc["spend"] != [{"channel": "se\"arch\\", "amount": 4.5, "currency": "EUR"}]:
        fail("spend: %r" % doc["spend"])


main()
