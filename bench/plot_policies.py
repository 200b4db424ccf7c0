#!/usr/bin/env python3
"""Hit rate against cache budget, one line per policy plus Belady, one panel per trace, from
bench/cache_policies.sh's policies.tsv. A plain SVG: needs nothing beyond Python's standard
library.

    python3 bench/plot_policies.py OUT/policies.tsv bench/cache_policies.svg
"""
import csv
import sys

# Demand-only policies drawn, in legend order; others in the TSV are left out of the picture.
COLORS = {"lru": "#9e9e9e", "lfu": "#1f77b4", "cycle:200": "#d62728", "belady": "#000000",
          "lfu+prefetch": "#aec7e8", "cycle:200+prefetch": "#ff9896"}
DASHED = {"belady": "6,3", "cycle:200+prefetch": "2,3", "lfu+prefetch": "2,3"}
W, H, M = 380, 320, 52


def panel(rows, trace, x0):
    pts = [(int(r["budget"]), float(r["hit_rate"]), r["policy"]) for r in rows if r["trace"] == trace]

    def px(b):
        return x0 + M + b / 100 * (W - 2 * M)

    def py(h):
        return H - M + 10 - h * (H - 2 * M)

    out = [f'<text x="{x0 + W / 2}" y="24" text-anchor="middle" font-size="14">{trace}</text>',
           f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(100)}" y2="{py(0)}" stroke="black"/>',
           f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(0)}" y2="{py(1)}" stroke="black"/>',
           f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">cache budget (% of all experts)</text>']
    for b in range(0, 101, 20):
        out.append(f'<text x="{px(b)}" y="{py(0) + 16}" text-anchor="middle" font-size="11">{b}</text>')
    for i in range(0, 11, 2):
        h = i / 10
        out.append(f'<text x="{px(0) - 6}" y="{py(h) + 4}" text-anchor="end" font-size="11">{h:.1f}</text>')
        out.append(f'<line x1="{px(0)}" y1="{py(h)}" x2="{px(100)}" y2="{py(h)}" stroke="#ddd"/>')
    for pol, color in COLORS.items():
        line = sorted((b, h) for b, h, p in pts if p == pol)
        if not line:
            continue
        path = " ".join(f"{px(b):.1f},{py(h):.1f}" for b, h in line)
        dash = f' stroke-dasharray="{DASHED[pol]}"' if pol in DASHED else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
    return out


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    traces = list(dict.fromkeys(r["trace"] for r in rows))
    body = []
    for i, t in enumerate(traces):
        body += panel(rows, t, i * W)
    legend = []
    for i, (pol, color) in enumerate(COLORS.items()):
        name = {"belady": "Belady (demand only)", "cycle:200": "cycle:200 (layer-aware)"}.get(pol, pol)
        x = M + i * (len(traces) * W - M) / len(COLORS)
        legend.append(f'<rect x="{x}" y="{H + 6}" width="14" height="4" fill="{color}"/>'
                      f'<text x="{x + 18}" y="{H + 12}" font-size="11">{name}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(traces) * W}" height="{H + 24}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
           + "".join(body + legend) + "</svg>\n")
    open(sys.argv[2], "w").write(svg)


if __name__ == "__main__":
    main()
