#!/usr/bin/env python3
"""Helpers for benches/load/run.sh (stdlib only, Python >= 3.8).

Subcommands:
  ready-time  exec a server N times and time exec -> first HTTP 200 on a URL
  hold-conns  open many idle keep-alive connections, report server RSS
  pctl        percentile of the duration column of an h2load --log-file
  summarize   turn the results TSV written by run.sh into tables

All traffic goes to 127.0.0.1 only (the URL host is checked).
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit


def _loopback_url(url):
    u = urlsplit(url)
    if u.scheme != "http":
        sys.exit(f"loadtool: only plain http:// URLs are supported, got {url!r}")
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"loadtool: refusing non-loopback target {u.hostname!r}")
    host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
    return host, u.port or 80, (u.path or "/") + (("?" + u.query) if u.query else "")


async def read_h1_response(r, timeout=10):
    """Reads one HTTP/1.1 response (head, then a Content-Length body); returns its status."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split(b" ", 2)[1])
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    if clen:
        await asyncio.wait_for(r.readexactly(clen), timeout)
    return status


def _proc_status(pid, key):
    """Value in kB of a /proc/PID/status line such as VmRSS, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _pss(pid):
    """Pss in kB from /proc/PID/smaps_rollup (shared pages split between sharers), or None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]


# ---------------------------------------------------------------- ready-time
def _probe(host, port, path, timeout=0.25):
    """One GET; returns the status code or None when nothing answers yet."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
            parts = buf.split(b"\r\n", 1)[0].split()
            return int(parts[1]) if len(parts) >= 2 else None
    except (ConnectionRefusedError, ConnectionResetError, socket.timeout, OSError):
        return None


def cmd_ready_time(a):
    host, port, path = _loopback_url(a.url)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        sys.exit("ready-time: missing command after --")
    if _probe(host, port, path) is not None:
        sys.exit(f"ready-time: something already answers on {host}:{port}")
    times = []
    log = open(a.log, "ab") if a.log else subprocess.DEVNULL
    current = []

    def on_signal(signum, _frame):  # never leave a launched server behind
        for c in current:
            c.kill()
            c.wait()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(a.runs):
        current.clear()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        current.append(p)
        ok = False
        while time.perf_counter() - t0 < a.timeout:
            if p.poll() is not None:
                break
            if _probe(host, port, path) == 200:
                ok = True
                break
            time.sleep(a.interval)
        dt = (time.perf_counter() - t0) * 1000.0
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if not ok:
            sys.exit(f"ready-time: run {i + 1}: no 200 from {a.url} within {a.timeout}s "
                     f"(exit code {p.returncode})")
        times.append(dt)
        # Wait until the port is free again before the next run.
        t1 = time.perf_counter()
        while _probe(host, port, path) is not None and time.perf_counter() - t1 < 5:
            time.sleep(0.01)
    print(json.dumps({
        "runs": len(times),
        "min_ms": round(min(times), 2),
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
    }))


# ---------------------------------------------------------------- hold-conns
async def _hold(a):
    host, port, path = _loopback_url(a.url)
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sem = asyncio.Semaphore(a.parallel)
    conns = []
    failures = {}

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            except Exception as e:  # noqa: BLE001 - report any failure kind
                failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                return
            if a.stalled:
                # A client that pipelines requests and never reads an answer: once the kernel
                # buffers are full, what the server keeps for it is what the server pins.
                w.write(req * a.stalled)
                try:
                    await asyncio.wait_for(w.drain(), 2)
                except asyncio.TimeoutError:
                    pass  # the server stopped reading: exactly the state to measure
                except Exception as e:  # noqa: BLE001
                    failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                    w.close()
                    return
                conns.append((r, w))
                return
            try:
                w.write(req)
                status = await read_h1_response(r)
                if status != 200:
                    failures[f"status {status}"] = failures.get(f"status {status}", 0) + 1
                conns.append((r, w))
            except Exception as e:  # noqa: BLE001
                failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
                w.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(a.conns)))
    open_secs = time.perf_counter() - t0
    await asyncio.sleep(a.settle)  # let the server finish its bookkeeping / notice EOFs
    still_open = sum(1 for r, _ in conns if not r.at_eof())

    pids = []
    for p in a.pid:
        pids.append(p)
        if a.with_children:
            pids.extend(_children(p))
    rss = sum(_proc_status(p, "VmRSS") or 0 for p in pids)
    pss = sum(_pss(p) or 0 for p in pids)

    for _, w in conns:
        w.close()
    await asyncio.sleep(0.2)
    print(json.dumps({
        "requested": a.conns,
        "established": len(conns),
        "still_open": still_open,
        "failures": failures,
        "open_secs": round(open_secs, 2),
        "rss_kib": rss,
        "pss_kib": pss,
        "pids": pids,
    }))


def cmd_hold_conns(a):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, a.conns + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < a.conns + 32:
        print(f"hold-conns: warning: RLIMIT_NOFILE {want} < {a.conns}", file=sys.stderr)
    asyncio.run(_hold(a))


# ---------------------------------------------------------------- pctl
def cmd_pctl(a):
    durs = []
    bad = 0
    with open(a.file) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            if not parts[1].startswith("2"):
                bad += 1
            durs.append(int(parts[2]))
    if not durs:
        print("nan")
        return
    durs.sort()
    idx = min(len(durs) - 1, max(0, int(round(a.p / 100.0 * len(durs))) - 1))
    print(f"{durs[idx] / 1000.0:.3f}")  # milliseconds


# ---------------------------------------------------------------- summarize
def _fmt_num(x, nd=0):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}"


def _fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.2f} ms" if x < 100 else f"{x:.0f} ms"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cmd_summarize(a):
    rows = []
    with open(a.results) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            vals = line.rstrip("\n").split("\t")
            rows.append(dict(zip(header, vals)))

    def num(v):
        try:
            x = float(v)
            return None if x != x else x  # NaN -> None
        except (TypeError, ValueError):
            return None

    scen_order, labels = [], {}
    for r in rows:
        if r["scenario"] not in labels:
            scen_order.append(r["scenario"])
            labels[r["scenario"]] = r["label"]

    # median over rounds, per (scenario, server)
    agg = {}
    for r in rows:
        agg.setdefault((r["scenario"], r["server"]), []).append(r)
    med = {}
    for key, rs in agg.items():
        def m(field):
            xs = [num(r[field]) for r in rs if num(r[field]) is not None]
            return statistics.median(xs) if xs else None
        errs = sum(int(num(r["errors"]) or 0) for r in rs)
        med[key] = {"rps": m("rps"), "p99_ms": m("p99_ms"), "cpu_us": m("cpu_us_per_req"),
                    "client_cpu_us": m("client_cpu_us_per_req") if "client_cpu_us_per_req" in rs[0] else None,
                    "reqs": m("requests"), "errors": errs, "n": len(rs)}

    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])

    out = []
    out.append("### All runs (median over rounds)\n")
    out.append("| scenario | server | req/s | p99 | server CPU µs/req | client CPU µs/req | errors | rounds |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|")
    for s in scen_order:
        for srv in servers:
            v = med.get((s, srv))
            if not v:
                continue
            out.append(f"| {s} | {srv} | {_fmt_num(v['rps'])} | {_fmt_ms(v['p99_ms'])} | "
                       f"{_fmt_num(v['cpu_us'], 1)} | {_fmt_num(v['client_cpu_us'], 1)} | "
                       f"{v['errors']} | {v['n']} |")
    out.append("")

    # Headline: issuerd vs the better nginx variant (by median req/s) per scenario.
    out.append("### issuerd vs nginx\n")
    out.append("| Scenario | issuerd req/s | nginx req/s | req/s ratio | issuerd p99 | nginx p99 "
               "| issuerd CPU µs/req | nginx CPU µs/req | CPU/req ratio |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for s in scen_order:
        i = med.get((s, "issuerd"))
        ngx = [(srv, med[(s, srv)]) for srv in servers
               if srv.startswith("nginx") and (s, srv) in med and med[(s, srv)]["rps"] is not None]
        best_name, best = (max(ngx, key=lambda kv: kv[1]["rps"]) if ngx else (None, None))
        i = i or {"rps": None, "p99_ms": None, "cpu_us": None}
        b = best or {"rps": None, "p99_ms": None, "cpu_us": None}
        variant = best_name.replace("nginx-", "") if best_name else "-"
        rr = _ratio(i["rps"], b["rps"])
        cr = _ratio(i["cpu_us"], b["cpu_us"])
        out.append(
            f"| {labels[s]} | {_fmt_num(i['rps'])} | {_fmt_num(b['rps'])} ({variant}) | "
            f"{'n/a' if rr is None else f'{rr:.2f}×'} | {_fmt_ms(i['p99_ms'])} | {_fmt_ms(b['p99_ms'])} | "
            f"{_fmt_num(i['cpu_us'], 1)} | {_fmt_num(b['cpu_us'], 1)} | "
            f"{'n/a' if cr is None else f'{cr:.2f}×'} |")
    out.append("")
    out.append("req/s ratio > 1: issuerd serves more; CPU/req ratio < 1: issuerd uses less CPU per request.")
    out.append("nginx column = the better (higher median req/s) of `worker_processes 1` (w1) "
               "and `worker_processes auto` (wauto) for that scenario.")

    if a.extra and os.path.exists(a.extra):
        with open(a.extra) as f:
            extra = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        if extra:
            out.append("")
            out.append("| Resource | issuerd | nginx |")
            out.append("|---|--:|--:|")
            for e in extra:
                e += ["n/a"] * (3 - len(e))
                out.append(f"| {e[0]} | {e[1]} | {e[2]} |")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("ready-time")
    p.add_argument("--url", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=0.0002, help="seconds between probes")
    p.add_argument("--log", help="append the server's stdout/stderr here")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_ready_time)

    p = sub.add_parser("hold-conns")
    p.add_argument("--url", required=True)
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--parallel", type=int, default=256, help="connects in flight at once")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait before reading RSS")
    p.add_argument("--pid", type=int, action="append", default=[])
    p.add_argument("--with-children", action="store_true", help="also sum the pids' children")
    p.add_argument("--stalled", type=int, default=0, metavar="N",
                   help="send N pipelined requests per connection and never read (stalled readers)")
    p.set_defaults(fn=cmd_hold_conns)

    p = sub.add_parser("pctl")
    p.add_argument("file")
    p.add_argument("-p", type=float, default=99.0)
    p.set_defaults(fn=cmd_pctl)

    p = sub.add_parser("summarize")
    p.add_argument("results")
    p.add_argument("--extra", help="TSV: label, issuerd value, nginx value")
    p.set_defaults(fn=cmd_summarize)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
