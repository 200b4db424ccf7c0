#!/usr/bin/env python3
"""KL to the unquantized model against file size, from bench/pmq_robustness.sh's results.tsv:
one panel per (model, evaluation text), one point per quantized file, coloured by the
calibration text (llama.cpp's presets need none); the best method of each (size, calibration)
is labelled. The lower-left edge is the quality frontier. A plain SVG: needs nothing beyond Python's standard library.

    python3 bench/plot_frontier.py bench/pmq_robustness.tsv bench/pmq_frontier.svg
"""
import csv
import math
import sys

COLORS = {"wiki": "#1f77b4", "other": "#d62728", "self": "#2ca02c", "none": "#000000"}
CALIB_NAMES = {"wiki": "calibrated on WikiText (in-domain for the wiki panels)",
               "other": "on Shakespeare + Grimm + TinyStories", "self": "on self-generated text",
               "none": "llama.cpp preset"}
EVAL_NAMES = {"wiki": "WikiText-2", "wp": "War and Peace (ru), last 10%"}
W, H, M = 420, 360, 56


def panel(rows, x0, title):
    sizes = [float(r["mib"]) for r in rows]
    kls = [max(float(r["kl"]), 1e-4) for r in rows]
    x_lo, x_hi = min(sizes) * 0.97, max(sizes) * 1.03
    y_lo, y_hi = math.floor(math.log10(min(kls))), math.ceil(math.log10(max(kls)))
    if y_hi == y_lo:
        y_hi += 1

    def px(s):
        return x0 + M + (s - x_lo) / (x_hi - x_lo) * (W - 1.5 * M)

    def py(k):
        return H - M + 10 - (math.log10(k) - y_lo) / (y_hi - y_lo) * (H - 2 * M)

    out = [f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{px(x_lo)}" y1="{py(10 ** y_lo)}" x2="{px(x_hi)}" y2="{py(10 ** y_lo)}" stroke="black"/>',
           f'<line x1="{px(x_lo)}" y1="{py(10 ** y_lo)}" x2="{px(x_lo)}" y2="{py(10 ** y_hi)}" stroke="black"/>',
           f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle" font-size="12">file size (MiB)</text>',
           f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" font-size="12" '
           f'transform="rotate(-90 {x0 + 14} {H / 2})">KL to F16 (nats, log)</text>']
    step = next(n for n in (0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 1e9) if n >= (x_hi - x_lo) / 6)
    s = math.ceil(x_lo / step) * step
    while s <= x_hi:
        out.append(f'<text x="{px(s):.1f}" y="{py(10 ** y_lo) + 16}" text-anchor="middle" font-size="11">{s:.3g}</text>')
        s += step
    for e in range(y_lo, y_hi + 1):
        for m in (1, 2, 5):
            k = m * 10 ** e
            if k > 10 ** y_hi:
                break
            out.append(f'<line x1="{px(x_lo)}" y1="{py(k):.1f}" x2="{px(x_hi)}" y2="{py(k):.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{px(x_lo) - 5}" y="{py(k) + 4:.1f}" text-anchor="end" font-size="10">{k:g}</text>')
    # Files of one size would sit on one vertical line: each calibration is drawn a little
    # to the side (by a fixed share of the axis), labels to the right.
    shift = {"wiki": -0.012, "other": 0.0, "self": 0.012, "none": 0.0}
    # Many methods share a size: only the best of each (size, calibration) and llama.cpp's
    # presets are labelled, so the labels on the frontier stay readable.
    best = {}
    for r, s, k in zip(rows, sizes, kls):
        key = (round(s, 2), r["calib"])
        best[key] = min(best.get(key, k), k)
    for r, s, k in zip(rows, sizes, kls):
        labelled = r["calib"] == "none" or best[(round(s, 2), r["calib"])] == k
        s += shift.get(r["calib"], 0.0) * (x_hi - x_lo)
        c = COLORS.get(r["calib"], "#888")
        shape = (f'<rect x="{px(s) - 4:.1f}" y="{py(k) - 4:.1f}" width="8" height="8" fill="{c}"/>'
                 if r["calib"] == "none" else f'<circle cx="{px(s):.1f}" cy="{py(k):.1f}" r="4" fill="{c}"/>')
        label = r["method"].replace("llama.cpp-", "") if labelled else ""
        out.append(shape + f'<text x="{px(s) + 6:.1f}" y="{py(k) + 3:.1f}" font-size="8" fill="{c}">{label}</text>')
    return out


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    panels = list(dict.fromkeys((r["model"], r["eval"]) for r in rows))
    body = []
    for i, (model, ev) in enumerate(panels):
        sel = [r for r in rows if r["model"] == model and r["eval"] == ev]
        body += panel(sel, i * W, f"{model}-tiny, scored on {EVAL_NAMES.get(ev, ev)}")
    legend = []
    for i, (calib, color) in enumerate(COLORS.items()):
        x, y = M + (i % 2) * len(panels) * W / 2, H + 10 + (i // 2) * 16
        legend.append(f'<circle cx="{x}" cy="{y}" r="4" fill="{color}"/>'
                      f'<text x="{x + 8}" y="{y + 4}" font-size="11">{CALIB_NAMES[calib]}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(panels) * W}" height="{H + 42}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
           + "".join(body + legend) + "</svg>\n")
    open(sys.argv[2], "w").write(svg)


if __name__ == "__main__":
    main()
