#!/usr/bin/env python3
"""Concurrent streaming clients against an OpenAI-compatible server (mcmoe serve or
llama.cpp's llama-server), the same requests for both: for each concurrency N, N streams of
/v1/completions at once (greedy, ignore_eos, a fixed number of tokens each, distinct short
prompts). Prints one TSV row per N: aggregate decode tokens/s, wall tokens/s, p50/p99 time to
first token and inter-token latency, and, when the server reports them in /metrics (mcmoe
with --expert-cache), MiB of experts read per generated token.

  python3 bench/serve_bench.py --url http://127.0.0.1:8080 --label mcmoe --concurrency 1,4,8,16 --tokens 64

Standard library only (runs with Debian's python3)."""
import argparse
import http.client
import json
import re
import statistics
import threading
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def metrics(url):
    u = urllib.parse.urlparse(url)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    except OSError:
        return {}
    out = {}
    for line in body.splitlines():
        m = re.match(r"^(\w+) ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def stream(url, prompt, tokens, result):
    u = urllib.parse.urlparse(url)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "n_predict": tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    arrivals = []
    completion_tokens = None
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            data = event[6:]
            if data == b"[DONE]":
                continue
            j = json.loads(data)
            if j.get("choices") and j["choices"][0].get("text"):
                arrivals.append(time.perf_counter())
            if j.get("usage"):
                completion_tokens = j["usage"]["completion_tokens"]
            elif j.get("timings"):  # llama-server
                completion_tokens = j["timings"]["predicted_n"]
    # A chunk can carry several tokens (bytes of one character arrive together), so token
    # counts come from the server's usage when it sends them.
    result.update(start=t0, arrivals=arrivals, status=r.status, tokens=completion_tokens or len(arrivals))


def run(url, n, tokens, round_index):
    threads, results = [], [dict() for _ in range(n)]
    filler = "the quick brown fox jumps over the lazy dog and then " * 3
    for i in range(n):
        prompt = f"Request {round_index}-{i}: {filler}"
        threads.append(threading.Thread(target=stream, args=(url, prompt, tokens, results[i])))
    before = metrics(url)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = metrics(url)
    ttft, itl, decode_tokens = [], [], 0
    firsts, lasts = [], []
    for r in results:
        a = r.get("arrivals", [])
        if r.get("status") != 200 or not a:
            raise SystemExit(f"a request failed: {r}")
        ttft.append(a[0] - r["start"])
        itl += [y - x for x, y in zip(a, a[1:])]
        decode_tokens += r["tokens"] - 1
        firsts.append(a[0])
        lasts.append(a[-1])
    generated = sum(r["tokens"] for r in results)
    row = {
        "decode_tok_s": decode_tokens / (max(lasts) - min(firsts)),
        "wall_tok_s": generated / wall,
        "ttft_p50_ms": 1e3 * percentile(ttft, 50), "ttft_p99_ms": 1e3 * percentile(ttft, 99),
        "itl_p50_ms": 1e3 * percentile(itl, 50), "itl_p99_ms": 1e3 * percentile(itl, 99),
        "tokens": generated,
    }
    key = "mcmoe_expert_bytes_read_total"
    gen_key = "mcmoe_generated_tokens_total"
    if key in after and key in before and after.get(gen_key, 0) > before.get(gen_key, 0):
        row["mib_read_per_token"] = (after[key] - before[key]) / 2**20 / (after[gen_key] - before[gen_key])
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--header", action="store_true")
    a = ap.parse_args()
    run(a.url, 1, 8, 0)  # warm-up: pages in the weights
    cols = ["decode_tok_s", "wall_tok_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tokens",
            "mib_read_per_token"]
    if a.header:
        print("\t".join(["server", "streams"] + cols), flush=True)
    for i, n in enumerate(int(x) for x in a.concurrency.split(",")):
        row = run(a.url, n, a.tokens, i + 1)
        print("\t".join([a.label, str(n)] + [f"{row[c]:.2f}" if c in row else "-" for c in cols]), flush=True)


if __name__ == "__main__":
    main()
