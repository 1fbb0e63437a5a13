"""`fastt2i serve` over HTTP on 127.0.0.1: slider-update latency and throughput under load, micro-batching vs none.

    python benchmarks/serve.py                       # ~3 minutes on 2 CPU cores; prints markdown tables
    python benchmarks/serve.py --requests 50 --quick # a smoke run

Starts `fastt2i serve` as subprocesses on a free port of 127.0.0.1 (never another address), each bounded:
1. latency: one client, one request at a time, `--requests` slider updates per slider (truncation psi, style-mixing
   cutoff, prompt-mixing layer range, interpolation alpha) on each bundled GAN, and a few Paella sampler moves;
2. throughput: 1, 8 and 32 concurrent clients (a bounded async client; each sends a fixed number of requests and
   stops) against a server with `--max-batch 1` and one with `--max-batch 32`, measured in the same run;
3. overload: 32 clients against a queue of 8: everything above the limit must be 503 with Retry-After, nothing 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import httpx

HOST = "127.0.0.1"  # the load goes to this machine only
GANS = ["gigagan-emoji64", "stylegan-t-emoji64"]
PAELLA = "paella-emoji64"
PROMPTS = ["red heart", "grinning face", "sushi", "blue star", "green apple", "cat face", "thumbs up", "sun"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextmanager
def server(models: list[str], threads: int, **options) -> Iterator[str]:
    """`fastt2i serve` in a subprocess on a free port of 127.0.0.1; yields its base URL, then stops it."""
    port = free_port()
    cmd = [sys.executable, "-m", "fastt2i", "serve", "--host", HOST, "--port", str(port), "--model", *models,
           "--threads", str(threads), "--log-level", "warning"]
    for k, v in options.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://{HOST}:{port}"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("the server did not start in 180 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))]


# ---------------------------------------------------------------------------------------------------- latency
def slider_bodies(model: str, num_ws: int, n: int) -> dict[str, list[tuple[str, dict]]]:
    """n slider updates per slider: (path, body) as the page sends them."""
    psis = [round(1 - i / 20, 2) for i in range(21)]
    half = num_ws // 2
    return {
        "truncation psi (generate)": [("/v1/generate", {"model": model, "prompts": ["red heart"], "seeds": [0],
                                                         "truncation": psis[i % 21]}) for i in range(n)],
        "style-mix cutoff": [("/v1/edit/mix", {"model": model, "kind": "style", "prompt": "red heart", "seed_a": 0,
                                               "seed_b": 1, "cutoff": i % (num_ws + 1)}) for i in range(n)],
        "prompt-mix layer range": [("/v1/edit/mix", {"model": model, "kind": "prompt", "seed": 0, "parts": [
            {"prompt": "red heart", "start": 0, "stop": 1 + i % half},
            {"prompt": "blue star", "start": 1 + i % half, "stop": None}]}) for i in range(n)],
        "interpolation alpha (frames cached)": [("/v1/edit/interpolate", {
            "model": model, "prompt_a": "red heart", "prompt_b": "blue star", "frames": 16, "alpha": (i % 16) / 15})
            for i in range(n)],
    }


def timed_sequence(client: httpx.Client, items: list[tuple[str, dict]]) -> list[float]:
    out = []
    for path, body in items:
        t0 = time.perf_counter()
        r = client.post(path, json=body)
        out.append(1000 * (time.perf_counter() - t0))
        if r.status_code != 200:
            raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:200]}")
    return out


def latency(base: str, n: int) -> list[tuple]:
    rows = []
    with httpx.Client(base_url=base, timeout=120) as c:
        info = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        for model in GANS:
            for name, items in slider_bodies(model, info[model]["num_ws"], n).items():
                timed_sequence(c, items[:10])  # warm-up (and the interpolation's one cache miss)
                ms = timed_sequence(c, items)
                rows.append((model, name, len(ms), statistics.median(ms), pct(ms, 95), max(ms)))
            miss = [("/v1/edit/interpolate", {"model": model, "prompt_a": "red heart", "prompt_b": f"star {i}",
                                              "frames": 16, "alpha": 0.5}) for i in range(5)]
            ms = timed_sequence(c, miss)
            rows.append((model, "interpolation alpha, first move (16 frames)", len(ms), statistics.median(ms),
                         pct(ms, 95), max(ms)))
        items = [("/v1/generate", {"model": PAELLA, "prompts": ["red heart"], "seeds": [0], "cfg": 1 + i % 5})
                 for i in range(max(10, n // 10))]
        timed_sequence(c, items[:2])
        ms = timed_sequence(c, items)
        rows.append((PAELLA, "cfg slider (12 steps, the bundle's)", len(ms), statistics.median(ms), pct(ms, 95),
                     max(ms)))
    return rows


# ---------------------------------------------------------------------------------------------------- load
async def load(base: str, model: str, clients: int, per_client: int, seed: int = 0) -> dict:
    """`clients` concurrent clients, each sending `per_client` generate requests one after another (bounded)."""
    rng = random.Random(seed)
    plans = [[(PROMPTS[rng.randrange(len(PROMPTS))], rng.randrange(10_000)) for _ in range(per_client)]
             for _ in range(clients)]
    latencies, codes, rows, retry_after = [], {}, [], []

    async def client(plan, http):
        for prompt, s in plan:
            t0 = time.perf_counter()
            r = await http.post("/v1/generate", json={"model": model, "prompts": [prompt], "seeds": [s],
                                                      "truncation": 0.7})
            latencies.append(1000 * (time.perf_counter() - t0))
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code == 200:
                rows.append(int(r.headers["x-batch-rows"]))
            elif r.status_code == 503:
                retry_after.append(r.headers.get("retry-after"))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as http:
        await http.post("/v1/generate", json={"model": model, "prompts": ["warm up"], "seeds": [0]})
        t0 = time.perf_counter()
        await asyncio.gather(*(client(p, http) for p in plans))
        wall = time.perf_counter() - t0
    return {"n": clients * per_client, "wall": wall, "rps": clients * per_client / wall, "codes": codes,
            "p50": statistics.median(latencies), "p95": pct(latencies, 95),
            "rows": statistics.mean(rows) if rows else 0.0, "retry_after": retry_after}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="slider updates per slider and model (default 200)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    ap.add_argument("--model", default="stylegan-t-emoji64", help="the model of the load test")
    ap.add_argument("--quick", action="store_true", help="fewer requests in the load test")
    args = ap.parse_args()
    per = {1: 48, 8: 12, 32: 4} if not args.quick else {1: 8, 8: 2, 32: 1}
    print(f"# fastt2i serve on {HOST}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start, "
          f"server torch threads {args.threads}\n")

    with server([*GANS, PAELLA], args.threads) as base:
        lat = latency(base, args.requests)
    print("## Slider update latency (one client, one request at a time, end to end over HTTP)\n")
    print("| model | slider | requests | p50 ms | p95 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model, name, n, p50, p95, mx in lat:
        print(f"| {model} | {name} | {n} | {p50:.1f} | {p95:.1f} | {mx:.1f} |")

    results = {}
    for max_batch in (1, 32):
        with server([args.model], args.threads, max_batch=max_batch, max_queue=64, batch_window_ms=4) as base:
            for clients, n in per.items():
                results[max_batch, clients] = asyncio.run(load(base, args.model, clients, n))
    print(f"\n## Throughput under load ({args.model}, generate at psi 0.7, random prompt and seed per request)\n")
    print("| clients | max batch | requests | req/s | p50 ms | p95 ms | mean batch | statuses | req/s vs batch 1 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for clients in per:
        for max_batch in (1, 32):
            r = results[max_batch, clients]
            gain = r["rps"] / results[1, clients]["rps"]
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
            print(f"| {clients} | {max_batch} | {r['n']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | "
                  f"{r['rows']:.1f} | {codes} | {gain:.2f}x |")

    with server([args.model], args.threads, max_batch=32, max_queue=8) as base:
        over = asyncio.run(load(base, args.model, 32, 4 if not args.quick else 1, seed=1))
    ok503 = all(v == "1" for v in over["retry_after"])
    print("\n## Overload (32 clients, queue limit 8, no retries)\n")
    print("| requests | 200 | 503 | other | every 503 has Retry-After |")
    print("| ---: | ---: | ---: | ---: | --- |")
    other = sum(v for k, v in over["codes"].items() if k not in (200, 503))
    print(f"| {over['n']} | {over['codes'].get(200, 0)} | {over['codes'].get(503, 0)} | {other} | "
          f"{'yes' if ok503 else 'no'} |")
    below = [r for (mb, c), r in results.items()]
    lost = sum(r["n"] - r["codes"].get(200, 0) for r in below)
    print(f"\nBelow the queue limit: {lost} of {sum(r['n'] for r in below)} requests not answered 200.")
    return 0 if lost == 0 and other == 0 and ok503 else 1


if __name__ == "__main__":
    sys.exit(main())
