#!/usr/bin/env python3
"""Checks that two `touchpoint attribute --format json` outputs agree on every model they
share (time_decay needs timestamps, so a path-table run has none) to 1e-9 relative."""
import json
import sys


def credits(doc):
    out = {}
    for m in doc["models"]:
        out[m["model"]] = {c["channel"]: c for c in m["channels"]}
    return out


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def main():
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
    ca, cb = credits(a), credits(b)
    shared = sorted(set(ca) & set(cb))
    if len(shared) < 2:
        sys.exit(f"only {shared} in common")
    bad = 0
    for model in shared:
        for ch in set(ca[model]) | set(cb[model]):
            x, y = ca[model].get(ch), cb[model].get(ch)
            for key in ("conversions", "value", "removal_effect"):
                vx = (x or {}).get(key, 0.0)
                vy = (y or {}).get(key, 0.0)
                if not close(vx, vy):
                    print(f"{model} {ch} {key}: {vx} != {vy}")
                    bad += 1
    tx, ty = a["totals"], b["totals"]
    for key in ("conversions", "value"):
        attributed_x = tx[key] - tx["unattributed_" + key]
        attributed_y = ty[key] - ty["unattributed_" + key]
        if not close(attributed_x, attributed_y):
            print(f"attributed {key}: {attributed_x} != {attributed_y}")
            bad += 1
    if bad:
        sys.exit(f"{bad} differences")
    print(f"agree: {', '.join(shared)}")


if __name__ == "__main__":
    main()
