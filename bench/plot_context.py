#!/usr/bin/env python3
"""Tokens/s against context length, both engines, from bench/long_context.sh's TSV.

Two panels (prefill tok/s by prompt length; decode tok/s by depth) drawn as a plain SVG,
so the picture needs nothing beyond Python's standard library.

    python3 bench/plot_context.py long_context.tsv long_context.svg
"""
import csv
import math
import sys

COLORS = {("mcmoe", "q4_0"): "#1f77b4", ("mcmoe", "q8_0"): "#6baed6",
          ("llama.cpp", "q4_0"): "#d62728", ("llama.cpp", "q8_0"): "#fc9272"}
W, H, M = 460, 320, 56  # panel size and margin


def panel(rows, test, x0, title, xlabel):
    pts = [(int(r["tokens"]), float(r["tok_s"]), r["engine"], r["type"]) for r in rows
           if r["test"] == test and r["tok_s"] not in ("", "nan")]
    if not pts:
        return []
    xs = sorted({max(p[0], 256) for p in pts})
    ymax = max(p[1] for p in pts) * 1.1
    lx0, lx1 = math.log2(xs[0]), math.log2(xs[-1]) if xs[-1] > xs[0] else math.log2(xs[0]) + 1

    def px(x):
        return x0 + M + (math.log2(max(x, 256)) - lx0) / (lx1 - lx0) * (W - 2 * M)

    def py(y):
        return H - M + 10 - y / ymax * (H - 2 * M)

    out = [f'<text x="{x0 + W / 2}" y="24" text-anchor="middle" font-size="15">{title}</text>',
           f'<line x1="{x0 + M}" y1="{py(0)}" x2="{x0 + W - M}" y2="{py(0)}" stroke="black"/>',
           f'<line x1="{x0 + M}" y1="{py(0)}" x2="{x0 + M}" y2="{py(ymax)}" stroke="black"/>',
           f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{xlabel}</text>']
    for x in xs:
        label = "0" if test == "decode" and x == 256 else (f"{x // 1024}k" if x >= 1024 else str(x))
        out.append(f'<text x="{px(x)}" y="{py(0) + 16}" text-anchor="middle" font-size="11">{label}</text>')
    step = 10 ** math.floor(math.log10(ymax / 4))
    step *= 5 if ymax / step > 20 else 2 if ymax / step > 8 else 1
    y = 0.0
    while y <= ymax:
        out.append(f'<text x="{x0 + M - 6}" y="{py(y) + 4}" text-anchor="end" font-size="11">{y:g}</text>')
        out.append(f'<line x1="{x0 + M}" y1="{py(y)}" x2="{x0 + W - M}" y2="{py(y)}" stroke="#ddd"/>')
        y += step
    for key, color in COLORS.items():
        line = sorted((p[0], p[1]) for p in pts if (p[2], p[3]) == key)
        if not line:
            continue
        path = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>' for x, v in line]
    return out


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    body = panel(rows, "prefill", 0, "Prefill tokens/s (2 threads)", "prompt tokens")
    body += panel(rows, "decode", W, "Decode tokens/s (2 threads)", "depth (tokens in the cache)")
    legend = []
    for i, ((engine, qtype), color) in enumerate(COLORS.items()):
        legend.append(f'<rect x="{M + i * 210}" y="{H + 6}" width="14" height="4" fill="{color}"/>'
                      f'<text x="{M + i * 210 + 20}" y="{H + 12}" font-size="12">{engine} {qtype.upper()}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 24}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
           + "".join(body + legend) + "</svg>\n")
    open(sys.argv[2], "w").write(svg)


if __name__ == "__main__":
    main()
