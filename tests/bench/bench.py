#!/usr/bin/env python3
# tests/bench/bench.py — latency, throughput and memory figures of a running
# pboxd, measured over its HTTP API the way a hosting provider's client sees
# them.  Started by tests/bench/run (which starts a pboxd of its own and
# loads the busybox image); prints a table, or JSON with --json.
#
# What it measures (N = --iterations):
#   create        POST /v1/sandboxes, sequential, N times (each removed after)
#   remove        DELETE /v1/sandboxes/ID?force=true of those
#   exec          POST .../exec {"argv":["true"]} in one sandbox, N times
#   run           POST /v1/run {"argv":["echo","hi"]}: create, exec, remove
#   run-parallel  the same from --parallel clients at once: runs per second
#   memory        VmRSS of the core and the api process: idle, then with
#                 --sandboxes sandboxes running (and what each one adds,
#                 counting its init's VmRSS too)
# Figures are wall-clock milliseconds (p50, p90, max).  They vary with the
# machine and its load: this prints figures, it does not judge them.
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse


class Api:
    def __init__(self, url, token):
        u = urllib.parse.urlparse(url)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("bench: the pboxd URL must be http on loopback")
        self.host, self.port, self.token = u.hostname, u.port or 80, token

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        headers = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        ms = (time.perf_counter() - t0) * 1000.0
        conn.close()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc, ms

    def must(self, method, path, body, want):
        status, doc, ms = self.call(method, path, body)
        if status != want:
            raise SystemExit(f"bench: {method} {path}: HTTP {status} {doc}")
        return doc, ms


def summary(samples):
    s = sorted(samples)
    if not s:
        return {"n": 0}

    def pct(p):
        return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]

    return {"n": len(s), "p50_ms": round(pct(50), 2), "p90_ms": round(pct(90), 2),
            "max_ms": round(s[-1], 2), "mean_ms": round(statistics.fmean(s), 2)}


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--pid", type=int, help="pboxd's pid (for the memory figures)")
    ap.add_argument("--image", default="busybox")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--sandboxes", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with open(a.token_file) as f:
        api = Api(a.url, f.read().strip())
    n = max(1, a.iterations)
    res = {"iterations": n, "parallel": a.parallel, "cpus": os.cpu_count()}

    # create / remove
    creates, removes = [], []
    for _ in range(n):
        doc, ms = api.must("POST", "/v1/sandboxes", {"image": a.image}, 201)
        creates.append(ms)
        _, ms = api.must("DELETE", f"/v1/sandboxes/{doc['id']}?force=true", None, 200)
        removes.append(ms)
    res["create"], res["remove"] = summary(creates), summary(removes)

    # exec in one sandbox
    doc, _ = api.must("POST", "/v1/sandboxes", {"image": a.image}, 201)
    sb = doc["id"]
    execs = []
    for _ in range(n):
        r, ms = api.must("POST", f"/v1/sandboxes/{sb}/exec", {"argv": ["true"]}, 200)
        if r.get("status") != "ok":
            raise SystemExit(f"bench: exec true: {r}")
        execs.append(ms)
    res["exec"] = summary(execs)
    api.must("DELETE", f"/v1/sandboxes/{sb}?force=true", None, 200)

    # one-shot runs, sequential then parallel
    run_body = {"image": a.image, "argv": ["echo", "hi"]}
    runs = []
    for _ in range(n):
        r, ms = api.must("POST", "/v1/run", run_body, 200)
        if r["run"]["status"] != "ok" or r["run"]["stdout"] != "hi\n":
            raise SystemExit(f"bench: run: {r}")
        runs.append(ms)
    res["run"] = summary(runs)

    par, errors, lock = [], [], threading.Lock()

    def worker(count):
        for _ in range(count):
            status, doc, ms = api.call("POST", "/v1/run", run_body)
            with lock:
                if status == 200 and doc["run"]["status"] == "ok":
                    par.append(ms)
                else:
                    errors.append(status)

    per = max(1, n // max(1, a.parallel))
    threads = [threading.Thread(target=worker, args=(per,)) for _ in range(max(1, a.parallel))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    res["run_parallel"] = summary(par)
    res["run_parallel"]["runs_per_s"] = round(len(par) / wall, 2) if wall > 0 else None
    res["run_parallel"]["errors"] = len(errors)
    if errors:
        print(f"bench: {len(errors)} parallel runs failed (HTTP {sorted(set(errors))})", file=sys.stderr)

    # memory: the daemon idle, then with sandboxes running
    if a.pid:
        api_pids = children(a.pid)

        def daemon_kb():
            core = rss_kb(a.pid) or 0
            return core, sum(rss_kb(p) or 0 for p in api_pids)

        core0, api0 = daemon_kb()
        ids, inits = [], []
        for _ in range(max(1, a.sandboxes)):
            doc, _ = api.must("POST", "/v1/sandboxes", {"image": a.image}, 201)
            ids.append(doc["id"])
            inits.append(doc.get("pid"))
        core1, api1 = daemon_kb()
        init_kb = [rss_kb(p) for p in inits if p]
        init_kb = [k for k in init_kb if k is not None]
        for i in ids:
            api.must("DELETE", f"/v1/sandboxes/{i}?force=true", None, 200)
        k = len(ids)
        res["memory"] = {
            "core_idle_kb": core0, "api_idle_kb": api0,
            "sandboxes": k, "core_with_sandboxes_kb": core1, "api_with_sandboxes_kb": api1,
            "daemon_kb_per_sandbox": round((core1 + api1 - core0 - api0) / k, 1),
            "init_rss_kb_mean": round(statistics.fmean(init_kb), 1) if init_kb else None,
        }

    if a.json:
        print(json.dumps(res, indent=2))
        return 1 if errors else 0
    print(f"pbox bench: {n} iterations, {a.parallel} parallel clients, {res['cpus']} CPUs")
    print(f"{'operation':<14} {'n':>5} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
    for key, label in (("create", "create"), ("remove", "remove"), ("exec", "exec true"),
                       ("run", "run (1-shot)"), ("run_parallel", "run parallel")):
        s = res[key]
        print(f"{label:<14} {s['n']:>5} {s.get('p50_ms', '-'):>9} {s.get('p90_ms', '-'):>9} {s.get('max_ms', '-'):>9}")
    rp = res["run_parallel"]
    print(f"run parallel: {rp['runs_per_s']} runs/s, {rp['errors']} errors")
    m = res.get("memory")
    if m:
        print(f"memory: core {m['core_idle_kb']} kB + api {m['api_idle_kb']} kB idle; "
              f"with {m['sandboxes']} sandboxes core {m['core_with_sandboxes_kb']} kB + api "
              f"{m['api_with_sandboxes_kb']} kB ({m['daemon_kb_per_sandbox']} kB each in the daemon, "
              f"init {m['init_rss_kb_mean']} kB each)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
