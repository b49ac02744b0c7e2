#!/usr/bin/env python3
"""jsoncmp.py A B [REL]: two JSON documents equal in shape, keys, order and text, with every
number within REL (default 1e-12) relative of the other's. Prints the largest relative
difference; exits 1 on any mismatch. (Compares base and new `touchpoint attribute` output.)"""
import json
import sys


def walk(a, b, path, st, rel):
    if isinstance(a, bool) or isinstance(b, bool) or not (
            isinstance(a, (int, float)) and isinstance(b, (int, float))):
        if type(a) is not type(b):
            st["bad"].append(f"{path}: type {type(a).__name__} != {type(b).__name__}")
        elif isinstance(a, dict):
            if list(a) != list(b):
                st["bad"].append(f"{path}: keys {list(a)} != {list(b)}")
            for k in a:
                if k in b:
                    walk(a[k], b[k], f"{path}.{k}", st, rel)
        elif isinstance(a, list):
            if len(a) != len(b):
                st["bad"].append(f"{path}: {len(a)} items != {len(b)}")
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]", st, rel)
        elif a != b:
            st["bad"].append(f"{path}: {a!r} != {b!r}")
        return
    st["numbers"] += 1
    d = abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0
    if d > 0:
        st["differ"] += 1
    st["max"] = max(st["max"], d)
    if d > rel:
        st["bad"].append(f"{path}: {a!r} != {b!r} (rel {d:.3g})")


def main():
    rel = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-12
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
    st = {"bad": [], "numbers": 0, "differ": 0, "max": 0.0}
    walk(a, b, "$", st, rel)
    for line in st["bad"][:20]:
        print(line)
    print(f"{sys.argv[1]} vs {sys.argv[2]}: {st['numbers']} numbers, {st['differ']} not "
          f"bit-identical, max relative difference {st['max']:.3g}, "
          f"{len(st['bad'])} mismatches")
    sys.exit(1 if st["bad"] else 0)


main()
