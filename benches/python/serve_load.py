#!/usr/bin/env python3
"""Load test of `dbrmt serve`: many clients, token-id prompts of random lengths, streamed answers.

Standard library only, so it runs on a GPU host without cargo or pip: it writes a random checkpoint of a published
shape with `dbrmt bench write-checkpoint` (or takes --model, or a running server at --url), starts `dbrmt serve`,
sends --requests requests from --clients concurrent clients (prompt lengths log-uniform in [--min-prompt,
--max-prompt], ids uniform in the vocabulary, --gen-tokens generated each, end-of-sequence ignored), polls
nvidia-smi for the GPU memory in use, and writes JSON lines to --out: one per request (with --per-request) and a
summary with throughput, time to first token p50/p99, latency, errors, the peak GPU memory and the server's own
metrics (among them how many requests shared the engine's packed steps). It ends by printing a short table.

On the H200 (from a checkout with dist/ from `cargo xtask bundle --gpu`):
    python3 benches/python/serve_load.py --dbrmt dist/dbrmt --preset llama-3.2-1b --out bench-results/serve.jsonl
A smoke run anywhere (CPU, tiny fixture; what crates/dbrmt-cli/tests/serve_load.rs runs):
    python3 benches/python/serve_load.py --dbrmt target/debug/dbrmt --model testdata/fixtures/tiny-armt-names \
        --device cpu --requests 12 --clients 4 --min-prompt 8 --max-prompt 200 --gen-tokens 4 --out /tmp/load.jsonl
"""

import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--preset", help="a model of benches/matrix.toml (random bf16 weights), e.g. llama-3.2-1b")
    where.add_argument("--model", help="a model path for dbrmt serve")
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    p.add_argument("--dbrmt", default="dist/dbrmt", help="the dbrmt binary (for --preset / --model)")
    p.add_argument("--device", default="cuda", help="dbrmt serve --device (default cuda)")
    p.add_argument("--segment", type=int, default=1024, help="segment size of the --preset checkpoint")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--min-prompt", type=int, default=1024)
    p.add_argument("--max-prompt", type=int, default=65536)
    p.add_argument("--gen-tokens", type=int, default=16)
    p.add_argument("--max-concurrent", type=int, default=64, help="dbrmt serve --max-concurrent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deadline-s", type=float, default=420.0,
                   help="send no new request after this many seconds (the run reports what finished)")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per-request timeout")
    p.add_argument("--out", required=True, help="JSON lines are appended here")
    p.add_argument("--per-request", action="store_true", help="also write one line per request")
    return p.parse_args()


class Server:
    """`dbrmt serve` on a free port, stopped on close()."""

    def __init__(self, args, model):
        cmd = [args.dbrmt, "serve", "--model", model, "--device", args.device, "--port", "0",
               "--max-concurrent", str(args.max_concurrent), "--max-queued", str(max(args.clients, 1)),
               "--max-tokens", str(max(args.gen_tokens, 1)),
               "--max-body-mb", str(max(32, args.max_prompt * 12 >> 20))]
        print("serve_load: " + " ".join(cmd), file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.url = None
        deadline = time.time() + 900
        while self.url is None:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("serve_load: dbrmt serve exited:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
            if time.time() > deadline:
                raise SystemExit("serve_load: dbrmt serve did not start")
        # keep draining stderr so the server never blocks on a full pipe
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stderr], daemon=True).start()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class GpuMemory:
    """Peak memory in use on the GPUs, polled with nvidia-smi (None where there is none)."""

    def __init__(self):
        self.peak_mib = None
        self.baseline_mib = self.sample()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        if self.baseline_mib is not None:
            self.thread.start()

    @staticmethod
    def sample():
        if shutil.which("nvidia-smi") is None:
            return None
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return sum(int(x) for x in out.split())
        except (subprocess.SubprocessError, ValueError):
            return None

    def run(self):
        while not self.stop.wait(0.2):
            v = self.sample()
            if v is not None:
                self.peak_mib = max(self.peak_mib or 0, v)

    def close(self):
        self.stop.set()


def request(url, body, timeout):
    """POSTs a streamed completion; returns (status, ttft_s, e2e_s, completion_tokens, error)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    t0 = time.perf_counter()
    ttft, tokens, error = None, 0, None
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, None, time.perf_counter() - t0, 0, resp.read().decode(errors="replace")[:500]
        done = False
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                error = event["error"].get("message")
                continue
            for choice in event.get("choices", []):
                n = len(choice.get("token_ids") or [])
                if n and ttft is None:
                    ttft = time.perf_counter() - t0
                tokens += n
        if not done and error is None:
            error = "the stream ended without [DONE]"
        return 200, ttft, time.perf_counter() - t0, tokens, error
    except (OSError, http.client.HTTPException, ValueError) as e:
        return None, ttft, time.perf_counter() - t0, tokens, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def metrics(url):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "_bucket" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def model_facts(url):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", "/v1/models")
        return json.loads(conn.getresponse().read())["data"][0]
    finally:
        conn.close()


def table(s, m):
    """The summary as a short Markdown table."""
    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)
    steps = m.get("dbrmt_engine_steps_total") or 0
    per_step = m.get("dbrmt_engine_request_steps_total", 0) / steps if steps else None
    peak = s["gpu_memory_peak_mib"]
    rows = [
        ("model", f"{s['model']} ({s['layers']} layers, T = {s['segment_size']}), {s['device']}"),
        ("requests", f"{s['ok']} ok of {s['requests']} ({s['errors']} errors, {s['not_sent']} not sent), "
                     f"{s['clients']} clients, prompts {s['prompt_tokens_min']}-{s['prompt_tokens_max']} ids, "
                     f"{s['gen_tokens']} generated each"),
        ("wall", f"{s['wall_s']:.1f} s"),
        ("throughput", f"{s['prompt_tokens_per_s']:,.0f} prompt tokens/s, {s['generated_tokens_per_s']:,.1f} "
                       f"generated tokens/s, {s['requests_per_s']:.2f} requests/s"),
        ("TTFT p50 / p99", f"{num(s['ttft_p50_s'], '.3f')} s / {num(s['ttft_p99_s'], '.3f')} s"),
        ("e2e p50 / p99", f"{num(s['e2e_p50_s'], '.3f')} s / {num(s['e2e_p99_s'], '.3f')} s"),
        ("peak GPU memory", "n/a (no nvidia-smi)" if peak is None else
         f"{peak:,} MiB (before the server: {s['gpu_memory_baseline_mib']:,} MiB); requests held at most "
         f"{m.get('dbrmt_engine_peak_device_bytes', 0) / 2**20:,.0f} MiB"),
        ("requests per step", f"mean {num(per_step, '.1f')}, max {m.get('dbrmt_engine_max_requests_per_step', 0):.0f}"),
    ]
    return "\n".join(["| serve load | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def main():
    args = parse_args()
    tmp = None
    server = None
    gpu = GpuMemory()
    try:
        if args.url:
            url = args.url
        else:
            model = args.model
            if args.preset:
                tmp = tempfile.mkdtemp(prefix="dbrmt-serve-load-")
                subprocess.run([args.dbrmt, "bench", "write-checkpoint", "--model", args.preset, "--segment",
                                str(args.segment), "--dir", tmp, "--seed", str(args.seed)], check=True)
                model = tmp
            server = Server(args, model)
            url = server.url
        facts = model_facts(url)
        vocab = facts["dbrmt"]["vocab_size"]
        rng = random.Random(args.seed)
        lo, hi = math.log(args.min_prompt), math.log(args.max_prompt)
        prompts = [int(round(math.exp(rng.uniform(lo, hi)))) for _ in range(args.requests)]
        results = [None] * args.requests
        next_index = [0]
        lock = threading.Lock()
        t0 = time.perf_counter()

        def client(k):
            crng = random.Random(args.seed * 1000 + k)
            while True:
                with lock:
                    i = next_index[0]
                    if i >= args.requests or time.perf_counter() - t0 > args.deadline_s:
                        return
                    next_index[0] += 1
                ids = [crng.randrange(vocab) for _ in range(prompts[i])]
                body = {"prompt": ids, "max_tokens": args.gen_tokens, "temperature": 0, "ignore_eos": True,
                        "stream": True, "return_token_ids": True}
                status, ttft, e2e, tokens, error = request(url, body, args.timeout_s)
                results[i] = {"index": i, "prompt_tokens": prompts[i], "status": status, "ttft_s": ttft,
                              "e2e_s": e2e, "completion_tokens": tokens, "error": error, "client": k,
                              "finished_at_s": time.perf_counter() - t0}

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        server_metrics = metrics(url)
    finally:
        gpu.close()
        if server is not None:
            server.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    done = [r for r in results if r is not None]
    ok = [r for r in done if r["status"] == 200 and r["error"] is None
          and r["completion_tokens"] == args.gen_tokens]
    ttfts = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    e2es = [r["e2e_s"] for r in ok]
    prompt_total = sum(r["prompt_tokens"] for r in ok)
    gen_total = sum(r["completion_tokens"] for r in ok)
    summary = {
        "bench": "serve_load",
        "model": args.preset or args.model or args.url,
        "device": args.device,
        "layers": facts["dbrmt"]["layers"],
        "segment_size": facts["dbrmt"]["segment_size"],
        "clients": args.clients,
        "max_concurrent": args.max_concurrent,
        "requests": args.requests,
        "sent": len(done),
        "ok": len(ok),
        "errors": len(done) - len(ok),
        "not_sent": args.requests - len(done),
        "prompt_tokens_min": args.min_prompt,
        "prompt_tokens_max": args.max_prompt,
        "gen_tokens": args.gen_tokens,
        "wall_s": wall,
        "prompt_tokens_total": prompt_total,
        "generated_tokens_total": gen_total,
        "prompt_tokens_per_s": prompt_total / wall,
        "generated_tokens_per_s": gen_total / wall,
        "requests_per_s": len(ok) / wall,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "e2e_p50_s": percentile(e2es, 50),
        "e2e_p99_s": percentile(e2es, 99),
        "gpu_memory_baseline_mib": gpu.baseline_mib,
        "gpu_memory_peak_mib": gpu.peak_mib,
        "first_errors": [r["error"] or f"status {r['status']}" for r in done if r not in ok][:5],
        "server_metrics": {k: v for k, v in server_metrics.items() if not k.endswith("_sum")},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a") as f:
        if args.per_request:
            for r in done:
                f.write(json.dumps({"bench": "serve_load_request", **r}) + "\n")
        f.write(json.dumps(summary) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "server_metrics"}, indent=1))
    print(table(summary, server_metrics))
    return 0 if summary["errors"] == 0 and summary["not_sent"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
