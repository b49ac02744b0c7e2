#!/usr/bin/env python3
"""Checks a report directory: every SVG is well-formed XML, index.html links only files
that exist (no network), each <img> states the PNG's real size, and optionally that names
appear literally in one SVG's text and in index.html's text.

usage: check_report.py DIR [NAMES SVG]   NAMES: lines "chart-form<TAB>html-form" (UTF-8);
a chart form starting with "=" must be a whole text of the SVG (a label), not part of one.
"""
import html.parser
import os
import struct
import sys
import xml.dom.minidom


def svg_texts(path):
    doc = xml.dom.minidom.parse(path)
    out = []

    def walk(n):
        if n.nodeType == n.TEXT_NODE:
            out.append(n.data)
        for k in n.childNodes:
            walk(k)

    walk(doc)
    return out


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs, self.imgs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if k in a:
                self.refs.append(a[k])
        if tag == "img":
            self.imgs.append(a)

    def handle_data(self, data):
        self.text.append(data)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(path + ": not a PNG")
    return struct.unpack(">II", head[16:24])


def main():
    d = sys.argv[1]
    bad = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".svg"):
            try:
                svg_texts(os.path.join(d, name))
            except Exception as e:  # noqa: BLE001 - report any parse failure
                bad.append("%s: not well-formed: %s" % (name, e))
    page = Page()
    with open(os.path.join(d, "index.html"), encoding="utf-8") as f:
        page.feed(f.read())
    for ref in page.refs:
        if ref.startswith("#"):
            continue
        if ":" in ref or ref.startswith("/") or ".." in ref:
            bad.append("index.html: not a local file: %r" % ref)
        elif not os.path.isfile(os.path.join(d, ref)):
            bad.append("index.html: links a missing file: %r" % ref)
    for img in page.imgs:
        src = img.get("src", "")
        if src.endswith(".png") and os.path.isfile(os.path.join(d, src)):
            w, h = png_size(os.path.join(d, src))
            if (str(w), str(h)) != (img.get("width"), img.get("height")):
                bad.append("%s: %dx%d, index.html says %sx%s" %
                           (src, w, h, img.get("width"), img.get("height")))
    if len(sys.argv) > 3:
        texts = svg_texts(os.path.join(d, sys.argv[3]))
        body = "".join(page.text)
        with open(sys.argv[2], encoding="utf-8") as f:
            for line in f.read().split("\n"):
                if not line:
                    continue
                chart, shown = line.split("\t")
                if chart.startswith("="):
                    if chart[1:] not in texts:
                        bad.append("%s: no label %r" % (sys.argv[3], chart[1:]))
                elif not any(chart in t for t in texts):
                    bad.append("%s: no text %r" % (sys.argv[3], chart))
                if shown not in body:
                    bad.append("index.html: no text %r" % shown)
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
