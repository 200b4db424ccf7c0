#!/usr/bin/env python3
"""Which experts a PMQ plan cuts to 1 bit, and how much the evaluation domain uses them.

Per layer: each expert's activation frequency (percent of the layer's picks) in the
calibration statistics the plan came from and in statistics measured on the evaluation
domain, the plan's widths, and the share of the evaluation domain's routing that lands on the
1-bit experts. The plan is read from `mcmoe inspect QUANTIZED.gguf`.

    python3 bench/pmq_diagnose.py CALIB_STATS.json EVAL_STATS.json <(mcmoe inspect Q.gguf)
"""
import json
import re
import sys


def freqs(path):
    layers = json.load(open(path))["layers"]
    out = []
    for L in layers:
        picks = [e["picks"] for e in L["experts"]]
        total = sum(picks) or 1
        out.append([100.0 * p / total for p in picks])
    return out


def plan(path):
    rows = {}
    for line in open(path):
        m = re.match(r"\s*layer\s+(\d+):\s+([\d ]+)$", line)
        if m:
            rows[int(m.group(1))] = [int(b) for b in m.group(2).split()]
    return [rows[l] for l in sorted(rows)]


def main():
    calib, ev, bits = freqs(sys.argv[1]), freqs(sys.argv[2]), plan(sys.argv[3])
    print("| layer | φ calibration (%) | φ evaluation domain (%) | bits | evaluation routing on 1-bit experts |")
    print("|---|---|---|---|---|")
    for l, (c, e, b) in enumerate(zip(calib, ev, bits)):
        share = sum(f for f, w in zip(e, b) if w == 1)
        print(f"| {l} | {' '.join(f'{x:.0f}' for x in c)} | {' '.join(f'{x:.0f}' for x in e)} | "
              f"{' '.join(map(str, b))} | {share:.0f}% |")


if __name__ == "__main__":
    main()
