#!/usr/bin/env python3
"""Decode tokens/s against the memory limit, mcmoe beside llama.cpp, from
bench/offload_large.sh's limits.tsv (LIMITS="4G 6G ..."): the Qwen3-30B-A3B-shaped model
(16.9 GB) decoded under each cgroup limit, one line per engine and decode length (a short
run from a cold cache pays for filling it; a longer one shows the steady state). Log-scale
tokens/s (the engines differ 30-50x).
A plain SVG: needs nothing beyond Python's standard library.

    python3 bench/plot_limits.py OUT/limits.tsv bench/offload_limits.svg
"""
import csv
import math
import sys

COLORS = {"mcmoe": ["#d62728", "#ff9896"], "llama.cpp": ["#1f77b4"]}
NAMES = {"mcmoe": "mcmoe --expert-cache auto", "llama.cpp": "llama.cpp (mmap)"}
W, H, M = 560, 360, 70


def main():
    rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if float(r["tok_s"]) > 0]
    xs = [float(r["limit_gib"]) for r in rows]
    x_lo, x_hi = 0, max(xs) * 1.1
    y_lo, y_hi = -1, 2  # 0.1 .. 100 tok/s

    def px(x):
        return M + (x - x_lo) / (x_hi - x_lo) * (W - 2 * M)

    def py(t):
        return H - M - (math.log10(t) - y_lo) / (y_hi - y_lo) * (H - 2 * M)

    out = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">'
           "Qwen3-30B-A3B-shaped model (16.9 GB Q4_0) decoded under a memory limit</text>",
           f'<line x1="{px(x_lo)}" y1="{H - M}" x2="{px(x_hi)}" y2="{H - M}" stroke="black"/>',
           f'<line x1="{px(x_lo)}" y1="{H - M}" x2="{px(x_lo)}" y2="{M}" stroke="black"/>',
           f'<text x="{W / 2}" y="{H - M + 34}" text-anchor="middle" font-size="12">'
           "cgroup memory limit (GiB), page cache dropped</text>",
           f'<text x="16" y="{H / 2}" text-anchor="middle" font-size="12" '
           f'transform="rotate(-90 16 {H / 2})">decode tokens/s (log)</text>']
    for x in sorted(set(xs)):
        out.append(f'<text x="{px(x)}" y="{H - M + 16}" text-anchor="middle" font-size="11">{x:g}</text>')
    for t in (0.1, 0.3, 1, 3, 10, 30, 100):
        out.append(f'<line x1="{px(x_lo)}" y1="{py(t)}" x2="{px(x_hi)}" y2="{py(t)}" stroke="#ddd"/>'
                   f'<text x="{px(x_lo) - 6}" y="{py(t) + 4}" text-anchor="end" font-size="11">{t:g}</text>')
    # One line per (engine, decode length), longest first within an engine.
    series = sorted({(r["engine"], int(r["gen_tokens"])) for r in rows}, key=lambda s: (s[0], -s[1]))
    shade = {}
    for i, (eng, gen) in enumerate(series):
        nth = shade.get(eng, 0)  # the engine's second line is labelled below its points
        color = COLORS[eng][min(nth, len(COLORS[eng]) - 1)]
        shade[eng] = nth + 1
        line = sorted((float(r["limit_gib"]), float(r["tok_s"])) for r in rows
                      if r["engine"] == eng and int(r["gen_tokens"]) == gen)
        out.append(f'<polyline points="{" ".join(f"{px(x):.1f},{py(t):.1f}" for x, t in line)}" '
                   f'fill="none" stroke="{color}" stroke-width="2"/>')
        for x, t in line:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(t):.1f}" r="3" fill="{color}"/>'
                       f'<text x="{px(x) + 6:.1f}" y="{py(t) + (14 if nth else -6):.1f}" font-size="10">{t:g}</text>')
        y = M - 30 + 12 * i
        out.append(f'<rect x="{M + 10}" y="{y - 4}" width="14" height="4" fill="{color}"/>'
                   f'<text x="{M + 28}" y="{y + 2}" font-size="11">{NAMES[eng]}, {gen} tokens</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">'
           '<rect width="100%" height="100%" fill="white"/>' + "".join(out) + "</svg>\n")
    open(sys.argv[2], "w").write(svg)


if __name__ == "__main__":
    main()
