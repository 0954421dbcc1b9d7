#!/usr/bin/env python3
"""Rotation-under-load benchmark for issuerd (Python >= 3.11, stdlib only, Linux).

Rotates the served keys many times while keep-alive clients hammer both documents, and checks
that every response is a byte-exact document of *some* key-set generation, that no ETag is ever
reused for a different body, that nobody sees an older generation after a newer one, and how long
a file change takes to be served. It is a benchmark, not a test: nothing is asserted on timing,
but the exit status is 1 when a correctness count is not 0 (2: the run could not be set up).

Run `python3 benches/rotation/run.py --help` for the knobs; README.md next to this file describes
the method. Everything it starts (issuerd, client processes, a temp directory) is removed on exit;
all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import concurrent.futures
import ctypes
import datetime
import hashlib
import json
import math
import multiprocessing as mp
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
JWKS_PATH = "/openid/v1/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"
DOC_PATHS = (JWKS_PATH, DISCOVERY_PATH)
PATTERNS = {
    # name: the key source directory it changes
    "kubelet": "kube",   # (a) new ..<timestamp> dir, ..data_tmp symlink renamed over ..data
    "rename": "plain",   # (b) write a hidden temp file, rename it over a visible key file
    "inplace": "plain",  # (c) truncate + write the visible key file (same inode)
}
KEY_TYPES = {
    "ec256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ec384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ec521": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    "rsa2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
}
SLOTS = ("key-0.pem", "key-1.pem")
SERVER_LOG_LEVEL = None  # --server-log: ISSUERD_LOG for the served issuerd


class SetupError(Exception):
    """The run could not be set up (exit 2)."""


# ----------------------------------------------------------------------------- small helpers
def env_default(name, default, conv=str):
    value = os.environ.get(name)
    return default if value in (None, "") else conv(value)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[rotation {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env():
    """The environment for issuerd: no ISSUERD_* settings leak in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUERD_")}
    env["NO_COLOR"] = "1"
    if SERVER_LOG_LEVEL:
        env["ISSUERD_LOG"] = SERVER_LOG_LEVEL
    return env


try:  # so issuerd dies with us even if we are SIGKILLed (Linux prctl PR_SET_PDEATHSIG)
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - non-Linux
    _PRCTL = None


def _die_with_parent():
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


# ----------------------------------------------------------------------------- HTTP parsing
def parse_head(head: bytes):
    """Status line + headers -> (status, {lower name: value})."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status, headers


def decode_chunked(buf: bytearray, start: int):
    """Chunked body starting at buf[start]: (body, end) or None when incomplete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        pos += size + 2


def take_response(buf: bytearray):
    """Removes one complete response from buf: (status, headers, body) or None if incomplete."""
    hend = buf.find(b"\r\n\r\n")
    if hend < 0:
        return None
    status, headers = parse_head(bytes(buf[:hend]))
    start = hend + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        got = decode_chunked(buf, start)
        if got is None:
            return None
        body, end = got
    elif "content-length" in headers:
        end = start + int(headers["content-length"])
        if len(buf) < end:
            return None
        body = bytes(buf[start:end])
    elif status in (204, 304) or 100 <= status < 200:
        body, end = b"", start
    else:
        raise ValueError("response without a length (read-until-close is not supported)")
    del buf[:end]
    return status, headers, body


# ----------------------------------------------------------------------------- validation
class Checker:
    """Classifies responses against the valid bodies; one per process (workers, orchestrator)."""

    def __init__(self, valid):
        # valid: {path: [body, ...]}; for the JWKS the index is the rotation step (unique bodies).
        self.valid = {p: {b: i for i, b in enumerate(bodies)} for p, bodies in valid.items()}
        self.sha = {p: [hashlib.sha256(b).hexdigest() for b in bodies] for p, bodies in valid.items()}
        self.requests = 0
        self.by_path = {p: 0 for p in valid}
        self.non200 = 0
        self.non200_status = {}
        self.invalid = 0
        self.invalid_samples = []
        self.regressions = 0
        self.missing_etag = 0
        self.etag_violations = 0
        self.etags = {}  # etag -> (path, body sha256)
        self.bodies_seen = {p: set() for p in valid}

    def check(self, path, status, headers, body, conn_state):
        """conn_state: a dict with 'last_step' (per logical client). Returns the JWKS step or None."""
        self.requests += 1
        self.by_path[path] += 1
        if status != 200:
            self.non200 += 1
            self.non200_status[status] = self.non200_status.get(status, 0) + 1
            return None
        index = self.valid[path].get(body)
        if index is None:
            self.invalid += 1
            sha = hashlib.sha256(body).hexdigest()
            if len(self.invalid_samples) < 5:
                self.invalid_samples.append(
                    {"path": path, "sha256": sha, "len": len(body), "head": body[:300].decode("utf-8", "replace")}
                )
        else:
            sha = self.sha[path][index]
            self.bodies_seen[path].add(index)
        etag = headers.get("etag")
        if etag is None:
            self.missing_etag += 1
        else:
            # Keyed by the ETag alone: one ETag on two different bodies is a violation even
            # across the two documents.
            seen = self.etags.get(etag)
            if seen is None:
                self.etags[etag] = (path, sha)
            elif seen != (path, sha):
                self.etag_violations += 1
        if index is not None and path == JWKS_PATH:
            if index < conn_state.get("last_step", -1):
                self.regressions += 1
            else:
                conn_state["last_step"] = index
            return index
        return None

    def result(self):
        return {
            "requests": self.requests,
            "by_path": self.by_path,
            "non200": self.non200,
            "non200_status": {str(k): v for k, v in self.non200_status.items()},
            "invalid": self.invalid,
            "invalid_samples": self.invalid_samples,
            "regressions": self.regressions,
            "missing_etag": self.missing_etag,
            "etag_violations": self.etag_violations,
            "etags": [[p, e, s] for e, (p, s) in self.etags.items()],
            "bodies_seen": {p: sorted(s) for p, s in self.bodies_seen.items()},
        }


# ----------------------------------------------------------------------------- load workers
class LoadClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection issuing GETs back to back. With --pipeline N it keeps N
    requests in flight (responses come back in order); N = 1 is plain request/response."""

    def __init__(self, worker, state):
        self.w = worker
        self.state = state  # survives reconnects: path, request bytes, last_step
        self.buf = bytearray()
        self.transport = None
        self.sent_at = collections.deque()
        self.closed = worker.loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.w.running:
            self.send(self.w.pipeline)

    def send(self, n=1):
        now = time.perf_counter_ns()
        self.sent_at.extend([now] * n)
        self.transport.write(self.state["request"] * n)

    def data_received(self, data):
        self.buf += data
        answered, close = 0, False
        while self.buf and not close:
            try:
                got = take_response(self.buf)
            except ValueError as error:
                self.w.error("protocol: " + str(error)[:60])
                self.transport.abort()
                return
            if got is None:
                break
            if not self.sent_at:
                self.w.error("protocol: response without a request")
                self.transport.abort()
                return
            status, headers, body = got
            answered += 1
            sent = self.sent_at.popleft()
            self.w.latencies[self.state["path"]].append(min((time.perf_counter_ns() - sent) // 1000, 0xFFFFFFFF))
            self.w.checker.check(self.state["path"], status, headers, body, self.state)
            if headers.get("connection", "").lower() == "close":
                self.w.server_closes += 1
                close = True
        if close:
            self.transport.close()
        elif not self.w.running:
            if not self.sent_at:
                self.transport.close()
        elif answered:
            self.send(answered)

    def connection_lost(self, exc):
        if self.w.running:
            # The server closed (or reset) a keep-alive connection under our feet.
            self.w.error("closed by server" if exc is None else f"{type(exc).__name__}")
        if not self.closed.done():
            self.closed.set_result(None)


class Worker:
    def __init__(self, port, specs, valid, pipeline):
        self.port = port
        self.pipeline = pipeline
        self.specs = specs
        self.checker = Checker(valid)
        self.latencies = {p: array.array("I") for p in DOC_PATHS}  # microseconds
        self.errors = {}
        self.server_closes = 0
        self.reconnects = 0
        self.running = False  # sending requests
        self.stopping = False  # shutting down: no reconnects
        self.loop = None

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def connect(self, state, attempts=100):
        for _ in range(attempts):
            try:
                _, proto = await self.loop.create_connection(
                    lambda: LoadClient(self, state), "127.0.0.1", self.port
                )
                return proto
            except OSError as error:
                self.error(f"connect: {type(error).__name__}")
                if self.stopping:
                    return None
                await asyncio.sleep(0.01)
        return None

    async def client(self, state, first):
        proto = first
        while True:
            if proto is not None:
                await proto.closed
            if not self.running:
                return
            self.reconnects += 1
            proto = await self.connect(state)
            if proto is None:
                return

    async def main(self, go, stop, ready_q, index, parent):
        self.loop = asyncio.get_running_loop()
        states = []
        for path in self.specs:
            req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUser-Agent: issuerd-rotation-bench\r\n\r\n"
            states.append({"path": path, "request": req.encode(), "last_step": -1})
        # Connect everything first, start sending only on "go".
        protos = [await self.connect(state) for state in states]
        ready_q.put(("ready", index))
        while not go.is_set():
            await asyncio.sleep(0.002)
        self.running = True
        started = time.time()
        for proto in protos:
            if proto is not None and proto.transport is not None and not proto.transport.is_closing():
                proto.send(self.pipeline)
        tasks = [asyncio.create_task(self.client(s, p)) for s, p in zip(states, protos)]
        orphaned = False
        while not stop.is_set():
            if os.getppid() != parent:  # orchestrator gone: do not linger
                orphaned = True
                break
            await asyncio.sleep(0.02)
        self.running = False
        self.stopping = True
        stopped = time.time()
        # In-flight responses get a moment to arrive, then everything is closed.
        await asyncio.wait(tasks, timeout=0.1 if orphaned else 2.0)
        for t in tasks:
            t.cancel()
        if orphaned:
            return None
        result = self.checker.result()
        result.update(
            conn_errors=self.errors,
            server_closes=self.server_closes,
            reconnects=self.reconnects,
            started=started,
            stopped=stopped,
            latencies={p: a.tobytes() for p, a in self.latencies.items()},
        )
        return result


def worker_entry(index, port, specs, valid, pipeline, go, stop, ready_q, result_q, nice, parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when we stop
    if nice:
        os.nice(nice)
    try:
        result = asyncio.run(Worker(port, specs, valid, pipeline).main(go, stop, ready_q, index, parent))
        if result is None:  # nobody will read the queue: do not block on its feeder thread
            os._exit(0)
        result_q.put(("result", index, result))
    except BaseException as error:  # report, so the orchestrator does not wait forever
        result_q.put(("failed", index, f"{type(error).__name__}: {error}"))
        raise


# ----------------------------------------------------------------------------- fast poller
class Poller:
    """A dedicated keep-alive connection, used for latency and /statusz; never shared."""

    def __init__(self, port, checker):
        self.port = port
        self.checker = checker
        self.reader = None
        self.writer = None
        self.state = {"last_step": -1}
        self.errors = {}

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def get(self, path):
        """One GET on the poller connection (reconnecting once on failure)."""
        for attempt in (0, 1):
            try:
                if self.writer is None:
                    await self._connect()
                self.writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
                )
                buf = bytearray()
                while True:
                    got = take_response(buf)
                    if got is not None:
                        return got
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        raise ConnectionResetError("closed by server")
                    buf += chunk
            except (OSError, ValueError) as error:
                kind = f"poller: {type(error).__name__}"
                self.errors[kind] = self.errors.get(kind, 0) + 1
                self.close()
                if attempt:
                    raise

    async def wait_for(self, expected, t0, timeout, interval):
        """Polls the JWKS every `interval` until it equals `expected`:
        (latency or None, polls, slowest poll round trip)."""
        polls, max_rtt = 0, 0.0
        deadline = t0 + timeout
        while True:
            sent = time.monotonic()
            try:
                status, headers, body = await self.get(JWKS_PATH)
            except (OSError, ValueError):
                status, headers, body = None, {}, b""
            now = time.monotonic()
            polls += 1
            max_rtt = max(max_rtt, now - sent)
            if status is not None:
                self.checker.check(JWKS_PATH, status, headers, body, self.state)
                if status == 200 and body == expected:
                    return now - t0, polls, max_rtt
            if now >= deadline:
                return None, polls, max_rtt
            await asyncio.sleep(max(0.0, sent + interval - time.monotonic()))

    async def statusz(self):
        try:
            status, _, body = await self.get("/statusz")
            return json.loads(body) if status == 200 else {"http_status": status}
        except (OSError, ValueError) as error:
            return {"error": str(error)}

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ----------------------------------------------------------------------------- setup
def find_binary(args):
    if args.bin:
        binary = Path(args.bin)
        if not os.access(binary, os.X_OK):
            raise SetupError(f"{binary} is not an executable")
        return binary
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "release" / "issuerd"
    if args.build or not binary.exists():
        log(f"building {binary} (cargo build --release --bin issuerd)")
        done = subprocess.run(["cargo", "build", "--release", "--bin", "issuerd"], cwd=ROOT)
        if done.returncode != 0:
            raise SetupError("cargo build failed")
    if not binary.exists():
        raise SetupError(f"{binary} missing after the build")
    return binary


def generate_keys(pool: Path, count, types, jobs):
    """count public-key PEMs keys/k000.pem ..., cycling through `types`, generated in parallel."""
    pool.mkdir(parents=True)

    def one(i):
        kind = types[i % len(types)]
        priv = pool / f"k{i:03d}.key"
        pub = pool / f"k{i:03d}.pem"
        subprocess.run(["openssl", "genpkey", *KEY_TYPES[kind], "-out", str(priv)], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True,
                       capture_output=True)
        return pub

    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        try:
            return list(ex.map(one, range(count)))
        except subprocess.CalledProcessError as error:
            raise SetupError(f"openssl failed: {error.stderr.decode(errors='replace')[:300]}") from None


def plan_rotations(rotations, patterns):
    """The key placement of every step. Step 0: kube={K0,K1}, plain={K2,K3}. Rotation r puts the
    new key K(3+r) into the slot of its pattern's directory that holds that directory's oldest key,
    so each directory always publishes (previous, next), and every step's key set is unique."""
    state = {"kube": [0, 1], "plain": [2, 3]}
    steps = [{"pattern": None, "dir": None, "slot": None, "key": None,
              "state": {d: list(s) for d, s in state.items()}}]
    for r in range(1, rotations + 1):
        pattern = patterns[(r - 1) % len(patterns)]
        d = PATTERNS[pattern]
        slot = min(range(len(SLOTS)), key=lambda i: state[d][i])
        state[d][slot] = 3 + r
        steps.append({"pattern": pattern, "dir": d, "slot": slot, "key": 3 + r,
                      "state": {k: list(v) for k, v in state.items()}})
    return steps


def render_steps(binary, work: Path, issuer, steps, keys, jobs):
    """`issuerd render` for every step's key set -> (jwks bodies, discovery bodies) by step."""

    def one(i):
        out = work / "render" / f"step{i:03d}"
        key_args = []
        for d in ("kube", "plain"):
            for k in steps[i]["state"][d]:
                key_args += ["--key-file", str(keys[k])]
        done = subprocess.run(
            [str(binary), "render", "--out", str(out), "--issuer", issuer, "--allow-insecure-issuer",
             *key_args],
            capture_output=True, env=child_env(),
        )
        if done.returncode != 0:
            raise SetupError(f"issuerd render (step {i}) failed: {done.stderr.decode(errors='replace')[:400]}")
        return ((out / "openid/v1/jwks").read_bytes(),
                (out / ".well-known/openid-configuration").read_bytes())

    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        rendered = list(ex.map(one, range(len(steps))))
    jwks = [j for j, _ in rendered]
    discovery = [d for _, d in rendered]
    if len(set(jwks)) != len(jwks):
        raise SetupError("two rotation steps rendered the same JWKS (key collision?)")
    return jwks, discovery


class KeyDirs:
    """The two key sources and the three ways of changing them."""

    def __init__(self, root: Path, keys):
        self.root = root
        self.keys = keys
        self.kube = root / "kube"
        self.plain = root / "plain"
        self.stamp_n = 0
        self.current_stamp = None
        self.t_pre = None  # just before the decisive rename/write (t0 is just after it)
        self.t_done = None  # after the last filesystem operation of the change

    def setup(self, state):
        self.kube.mkdir(parents=True)
        self.plain.mkdir(parents=True)
        self.kubelet_swap(state["kube"])
        for name in SLOTS:
            os.symlink(os.path.join("..data", name), self.kube / name)
        for slot, k in enumerate(state["plain"]):
            shutil.copyfile(self.keys[k], self.plain / SLOTS[slot])

    def kubelet_swap(self, kube_keys):
        """Like the kubelet's AtomicWriter: payload into a new ..<timestamp> dir, ..data_tmp ->
        it, rename ..data_tmp over ..data. Returns the time of the rename; the old timestamped
        directory is removed afterwards (as the kubelet does)."""
        self.stamp_n += 1
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.stamp_n:09d}"
        stamp_dir = self.kube / stamp
        stamp_dir.mkdir()
        for slot, k in enumerate(kube_keys):
            shutil.copyfile(self.keys[k], stamp_dir / SLOTS[slot])
        tmp_link = self.kube / "..data_tmp"
        os.symlink(stamp, tmp_link)
        self.t_pre = time.monotonic()
        os.rename(tmp_link, self.kube / "..data")
        t0 = time.monotonic()
        old, self.current_stamp = self.current_stamp, stamp
        if old is not None:
            shutil.rmtree(self.kube / old)
        self.t_done = time.monotonic()
        return t0

    def rename_over(self, slot, k, r):
        """Write a hidden temp file beside the target, then rename it over the target."""
        target = self.plain / SLOTS[slot]
        tmp = self.plain / f".{SLOTS[slot]}.tmp{r}"
        tmp.write_bytes(self.keys[k].read_bytes())
        self.t_pre = time.monotonic()
        os.rename(tmp, target)
        return time.monotonic()

    def rewrite_in_place(self, slot, k):
        """open(O_TRUNC) + one write() + close on the same inode."""
        data = self.keys[k].read_bytes()
        self.t_pre = time.monotonic()
        with open(self.plain / SLOTS[slot], "wb") as f:
            f.write(data)
        return time.monotonic()

    def apply(self, step, r):
        """Makes rotation r's change; returns t0 (just after the decisive rename/write). Sets
        t_pre (just before it) and t_done (after any trailing clean-up, i.e. the last event)."""
        self.t_done = None
        t0 = self._apply(step, r)
        if self.t_done is None:
            self.t_done = t0
        return t0

    def _apply(self, step, r):
        if step["pattern"] == "kubelet":
            return self.kubelet_swap(step["state"]["kube"])
        if step["pattern"] == "rename":
            return self.rename_over(step["slot"], step["key"], r)
        return self.rewrite_in_place(step["slot"], step["key"])


# ----------------------------------------------------------------------------- orchestration
async def http_get_once(port, path, timeout=1.0):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray()
        while True:
            got = take_response(buf)
            if got is not None:
                return got
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                raise ConnectionResetError("closed")
            buf += chunk
    finally:
        writer.close()


async def wait_ready(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"issuerd exited with status {proc.returncode} during start-up")
        try:
            status, _, _ = await http_get_once(port, "/readyz", 0.5)
            if status == 200:
                return
        except (OSError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.02)
    raise SetupError("issuerd did not become ready in time")


def split_connections(conns, workers):
    """Connections are dealt round-robin to the worker processes; within each process they
    alternate between the JWKS and the discovery document, so every process loads both."""
    specs = [[] for _ in range(workers)]
    for i in range(conns):
        specs[i % workers].append(DOC_PATHS[(i // workers) % 2])
    return [s for s in specs if s]


async def run(args, work: Path, resources):
    binary = find_binary(args)
    t_begin = time.monotonic()  # the time budget starts after a possible cargo build
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    for p in patterns:
        if p not in PATTERNS:
            raise SetupError(f"unknown pattern {p!r} (known: {', '.join(PATTERNS)})")
    types = [t.strip() for t in args.key_types.split(",") if t.strip()]
    for t in types:
        if t not in KEY_TYPES:
            raise SetupError(f"unknown key type {t!r} (known: {', '.join(KEY_TYPES)})")
    jobs = max(2, os.cpu_count() or 2)

    steps = plan_rotations(args.rotations, patterns)
    keys = generate_keys(work / "pool", args.rotations + 4, types, jobs)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    jwks_bodies, discovery_bodies = render_steps(binary, work, issuer, steps, keys, jobs)
    distinct_discovery = list(dict.fromkeys(discovery_bodies))
    valid = {JWKS_PATH: jwks_bodies, DISCOVERY_PATH: distinct_discovery}
    log(f"{len(keys)} keys ({','.join(types)}), {len(steps)} steps rendered "
        f"({len(distinct_discovery)} distinct discovery documents) in {time.monotonic() - t_begin:.1f}s")

    dirs = KeyDirs(work / "keys", keys)
    dirs.setup(steps[0]["state"])

    server_log = open(work / "issuerd.log", "wb")
    resources["server_log"] = work / "issuerd.log"
    cmd = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--issuer", issuer,
           "--allow-insecure-issuer", "--key-file", str(dirs.kube), "--key-file", str(dirs.plain)]
    if args.debounce:
        cmd += ["--debounce", args.debounce]
    if args.poll_interval:
        cmd += ["--poll-interval", args.poll_interval]
    proc = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=child_env(), preexec_fn=_die_with_parent)
    resources["server"] = proc
    await wait_ready(port, proc, 10.0)
    for path, expected in ((JWKS_PATH, jwks_bodies[0]), (DISCOVERY_PATH, discovery_bodies[0])):
        status, _, body = await http_get_once(port, path)
        if status != 200 or body != expected:
            raise SetupError(f"{path}: served bytes differ from `issuerd render` for the same keys "
                             f"(status {status}); see {work / 'render/step000'}")
    log(f"issuerd pid {proc.pid} on {issuer}, sources {dirs.kube} (kubelet layout) + {dirs.plain} (plain)")

    # Load workers: separate processes, so the orchestrator's poller is not starved by them.
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    specs = split_connections(args.conns, min(args.workers, args.conns))
    procs = []
    for i, spec in enumerate(specs):
        p = ctx.Process(target=worker_entry, daemon=True,
                        args=(i, port, spec, valid, args.pipeline, go, stop, ready_q, result_q, args.client_nice,
                              os.getpid()))
        p.start()
        procs.append(p)
    resources["workers"] = procs
    resources["stop"] = stop
    loop = asyncio.get_running_loop()
    for _ in procs:
        try:
            await loop.run_in_executor(None, lambda: ready_q.get(timeout=20))
        except queue.Empty:
            raise SetupError("load workers did not connect in time") from None
    go.set()
    load_start = time.monotonic()
    log(f"load: {args.conns} keep-alive connections in {len(procs)} processes; "
        f"warm-up {args.warmup}s, then {args.rotations} rotations ({','.join(patterns)})")

    checker = Checker(valid)
    poller = Poller(port, checker)
    await asyncio.sleep(args.warmup)

    budget_end = t_begin + args.budget - args.cooldown - 3.0  # 3 s: stopping and reporting
    rotations = []
    for r in range(1, len(steps)):
        if time.monotonic() + args.observe_timeout > budget_end:
            log(f"time budget reached: stopping after {r - 1} rotations")
            break
        step = steps[r]
        t0 = dirs.apply(step, r)
        wall0 = time.time() - (time.monotonic() - t0)
        latency, polls, max_rtt = await poller.wait_for(
            jwks_bodies[r], t0, args.observe_timeout, args.poll_ms / 1000
        )
        status = await poller.statusz()
        rotations.append({
            "rotation": r, "pattern": step["pattern"], "latency": latency, "polls": polls,
            "syscall_ms": (t0 - dirs.t_pre) * 1000, "trailing_ms": (dirs.t_done - t0) * 1000,
            "max_poll_rtt_ms": max_rtt * 1000, "changed_wall": wall0,
            "changed_at": time.strftime("%H:%M:%S", time.gmtime(wall0)) + f"{wall0 % 1:.6f}"[1:] + "Z",
            "generation": status.get("generation"), "last_reload_error": status.get("last_reload_error"),
        })
        if args.verbose:
            log(f"rotation {r:3d} {step['pattern']:8s} changed {rotations[-1]['changed_at']} latency {ms(latency)} ms "
                f"(rename/write took {rotations[-1]['syscall_ms']:.2f} ms, slowest poll {max_rtt * 1000:.1f} ms), "
                f"generation {status.get('generation')}, polls {polls}")
        await asyncio.sleep(args.pause_ms / 1000)

    await asyncio.sleep(args.cooldown)
    stop.set()
    load_end = time.monotonic()
    results, failures = [], []
    for _ in procs:
        try:
            kind, index, payload = await loop.run_in_executor(None, lambda: result_q.get(timeout=15))
        except queue.Empty:
            failures.append("a load worker sent no result")
            continue
        (results if kind == "result" else failures).append(payload)
    for p in procs:
        await loop.run_in_executor(None, p.join, 5)

    final_status = await poller.statusz()
    poller.close()

    # Graceful stop, timed.
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = await loop.run_in_executor(None, lambda: proc.wait(timeout=15))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    stop_secs = time.monotonic() - t_term
    server_log.close()
    log_text = (work / "issuerd.log").read_text(errors="replace")

    return report(args, patterns, steps, rotations, results, failures, checker, poller, final_status,
                  load_start, load_end, rc, stop_secs, log_text, time.monotonic() - t_begin)


PUBLISH_LINE = re.compile(r'^(\S+)\s+INFO\s.*published key set(?: cause="(\w+)")? generation=(\d+)', re.M)


def parse_publishes(log_text):
    """issuerd's human log -> {generation: (unix time of the 'published key set' line, cause)}."""
    out = {}
    for stamp, cause, generation in PUBLISH_LINE.findall(log_text):
        try:
            at = datetime.datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            continue
        out[int(generation)] = (at, cause or "start")
    return out


def report(args, patterns, steps, rotations, results, failures, checker, poller, final_status,
           load_start, load_end, rc, stop_secs, log_text, wall):
    load_secs = load_end - load_start
    total = lambda key: sum(r[key] for r in results)  # noqa: E731
    requests = total("requests")
    by_path = {p: sum(r["by_path"][p] for r in results) for p in DOC_PATHS}
    non200 = total("non200")
    non200_status = {}
    for r in results:
        for k, v in r["non200_status"].items():
            non200_status[k] = non200_status.get(k, 0) + v
    conn_errors = {}
    for r in results + [{"conn_errors": poller.errors}]:
        for k, v in r["conn_errors"].items():
            conn_errors[k] = conn_errors.get(k, 0) + v
    invalid = total("invalid") + checker.invalid
    regressions = total("regressions") + checker.regressions
    missing_etag = total("missing_etag") + checker.missing_etag
    # ETag reuse: within each process (counted per response) and across processes (per pair).
    within = total("etag_violations") + checker.etag_violations
    merged, across = {}, 0
    etags_per_body = {}
    for pairs in [r["etags"] for r in results] + [checker.result()["etags"]]:
        for path, etag, sha in pairs:
            seen = merged.setdefault(etag, (path, sha))
            if seen != (path, sha):
                across += 1
            etags_per_body.setdefault((path, sha), set()).add(etag)
    multi_etag_bodies = sum(1 for s in etags_per_body.values() if len(s) > 1)
    lat_by_path = {}
    for path in DOC_PATHS:
        a = array.array("I")
        for r in results:
            a.frombytes(r["latencies"][path])
        lat_by_path[path] = sorted(a)
    lat = sorted(lat_by_path[JWKS_PATH] + lat_by_path[DISCOVERY_PATH])
    observed = [r for r in rotations if r["latency"] is not None]
    missed = [r for r in rotations if r["latency"] is None]
    last_gen = final_status.get("generation")
    reload_failed = log_text.count("key reload failed")
    published_at = parse_publishes(log_text)
    for r in rotations:
        at = published_at.get(r["generation"]) if isinstance(r["generation"], int) else None
        r["published_latency"] = None if at is None else at[0] - r["changed_wall"]
    published = log_text.count("published key set")
    jwks_seen = set()
    for r in results:
        jwks_seen.update(r["bodies_seen"][JWKS_PATH])

    out = []
    add = out.append
    add("")
    add("== issuerd rotation under load ==")
    add(f"connections {args.conns} ({len(results)} client processes, nice {args.client_nice}, "
        f"pipeline {args.pipeline}), "
        f"load window {load_secs:.1f}s, wall time {wall:.1f}s, debounce {args.debounce or 'default (100ms)'}")
    add(f"requests             {requests}  ({requests / load_secs:,.0f} req/s; "
        f"jwks {by_path[JWKS_PATH]}, discovery {by_path[DISCOVERY_PATH]})")
    if lat:
        add(f"request latency      p50 {percentile(lat, 50) / 1000:.2f} ms, p99 {percentile(lat, 99) / 1000:.2f} ms, "
            f"max {lat[-1] / 1000:.1f} ms (client-side, includes Python)")
        for path, name in ((JWKS_PATH, "jwks"), (DISCOVERY_PATH, "discovery")):
            a = lat_by_path[path]
            if a:
                add(f"  {name:18s} p50 {percentile(a, 50) / 1000:.2f} ms, p99 {percentile(a, 99) / 1000:.2f} ms, "
                    f"max {a[-1] / 1000:.1f} ms, {sum(1 for x in a if x >= 40000)} responses >= 40 ms")
    add(f"poller requests      {checker.requests}")
    add(f"non-200 responses    {non200}" + (f"  {non200_status}" if non200_status else ""))
    add(f"invalid bodies       {invalid}  (not byte-equal to any generation's rendered document)")
    add(f"etag reuse           {within + across}  (same ETag, different body; {within} per response, "
        f"{across} across processes)")
    add(f"missing etag         {missing_etag}")
    add(f"regressions          {regressions}  (a client saw an older JWKS after a newer one)")
    add(f"connection errors    {sum(conn_errors.values())}" + (f"  {conn_errors}" if conn_errors else ""))
    add(f"server closes        {total('server_closes')} (Connection: close), reconnects {total('reconnects')}")
    add(f"rotations observed   {len(observed)}/{len(rotations)}"
        + (f"  (missed: {[r['rotation'] for r in missed]})" if missed else ""))
    add(f"distinct JWKS seen by load clients: {len(jwks_seen)} of {len(rotations) + 1} generations; "
        f"bodies with >1 ETag: {multi_etag_bodies}")
    add(f"server generation    {last_gen} at the end (expected {1 + len(observed)}); "
        f"log: {published} 'published key set', {reload_failed} 'key reload failed'; "
        f"last_reload_error {final_status.get('last_reload_error')!r}")
    add(f"server stop          SIGTERM -> exit {rc} in {stop_secs:.2f}s")
    add("")
    add("file change -> new JWKS latency, ms. served: rename/write returned -> the poller first gets the new")
    add(f"JWKS (poll every {args.poll_ms:g} ms); published: same start -> the 'published key set' log line's timestamp")
    add(f"  {'pattern':10s} {'n':>3s} | {'served p50':>10s} {'p99':>7s} {'max':>7s} {'min':>7s} | "
        f"{'published p50':>13s} {'p99':>7s} {'max':>7s}")
    for name in ["all"] + patterns:
        if name != "all" and not any(r["pattern"] == name for r in rotations):
            continue
        rows = [r for r in observed if name == "all" or r["pattern"] == name]
        served = sorted(r["latency"] for r in rows)
        pub = sorted(r["published_latency"] for r in rows if r.get("published_latency") is not None)
        add(f"  {name:10s} {len(served):3d} | {ms(percentile(served, 50)):>10s} {ms(percentile(served, 99)):>7s} "
            f"{ms(served[-1] if served else None):>7s} {ms(served[0] if served else None):>7s} | "
            f"{ms(percentile(pub, 50)):>13s} {ms(percentile(pub, 99)):>7s} {ms(pub[-1] if pub else None):>7s}")
    slow = [r for r in rotations if r["syscall_ms"] > 1.0]
    add(f"change-time uncertainty: the decisive rename/write itself took max "
        f"{max((r['syscall_ms'] for r in rotations), default=0):.2f} ms; {len(slow)} rotation(s) over 1 ms "
        f"(the orchestrator was descheduled; their start time is late by up to that much)")
    trailing = [r["trailing_ms"] for r in rotations if r["pattern"] == "kubelet"]
    if trailing:
        add(f"kubelet clean-up (old ..<timestamp> dir removed after t0, the last event the debounce "
            f"waits for): max {max(trailing):.1f} ms")
    add(f"slowest single poll round trip during a rotation: "
        f"{max((r['max_poll_rtt_ms'] for r in rotations), default=0):.1f} ms")
    causes = {}
    for _, cause in published_at.values():
        causes[cause] = causes.get(cause, 0) + 1
    add(f"publishes by cause (issuerd log): {causes or 'n/a (log format not recognised)'}")
    errs = [r for r in rotations if r["last_reload_error"]]
    if errs:
        add(f"reload errors visible on /statusz right after {len(errs)} rotation(s), e.g. "
            f"#{errs[0]['rotation']}: {errs[0]['last_reload_error']}")

    samples = [s for r in results for s in r["invalid_samples"]] + checker.invalid_samples
    for s in samples[:3]:
        add(f"  invalid body sample: {s}")

    problems = []
    if non200:
        problems.append(f"{non200} non-200 responses")
    if invalid:
        problems.append(f"{invalid} invalid bodies")
    if within + across:
        problems.append(f"{within + across} ETag reuses")
    if regressions:
        problems.append(f"{regressions} regressions")
    if missing_etag:
        problems.append(f"{missing_etag} responses without ETag")
    if sum(conn_errors.values()):
        problems.append(f"{sum(conn_errors.values())} connection errors")
    if missed:
        problems.append(f"{len(missed)} rotations not served within {args.observe_timeout}s")
    if failures:
        problems.append(f"client failures: {failures}")
    if rc != 0:
        problems.append(f"issuerd exited {rc} on SIGTERM")
    add("")
    add("RESULT: " + ("OK (all correctness counts are 0)" if not problems else "FAIL: " + "; ".join(problems)))
    print("\n".join(out), flush=True)

    if args.json:
        summary = {
            "conns": args.conns, "workers": len(results), "load_seconds": load_secs, "requests": requests,
            "req_per_sec": requests / load_secs, "by_path": by_path, "non200": non200,
            "invalid": invalid, "etag_reuse": within + across, "missing_etag": missing_etag,
            "regressions": regressions, "conn_errors": conn_errors, "rotations": rotations,
            "rotations_observed": len(observed), "final_status": final_status,
            "reload_failed_logged": reload_failed, "server_exit": rc, "problems": problems,
            "request_latency_us": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                                   "max": lat[-1] if lat else None},
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if problems else 0


def cleanup(resources, work: Path, keep):
    stop = resources.get("stop")
    if stop is not None:
        stop.set()
    for p in resources.get("workers", []):
        p.join(3)
        if p.is_alive():
            p.terminate()
            p.join(2)
        if p.is_alive():
            p.kill()
    proc = resources.get("server")
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="issuerd key rotation under load (see benches/rotation/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--rotations", type=int, default=env_default("ROTATIONS", 20, int))
    ap.add_argument("--conns", type=int, default=env_default("CONNS", 32, int),
                    help="load connections (even: JWKS, odd: discovery)")
    ap.add_argument("--pipeline", type=int, default=env_default("PIPELINE", 1, int),
                    help="requests kept in flight per load connection (HTTP/1.1 pipelining)")
    ap.add_argument("--workers", type=int, default=env_default("WORKERS", min(4, os.cpu_count() or 2), int),
                    help="client processes the connections are spread over")
    ap.add_argument("--client-nice", type=int, default=env_default("CLIENT_NICE", 10, int),
                    help="nice increment for the load client processes, so the rotating/polling "
                         "orchestrator is not descheduled by them (0: same priority)")
    ap.add_argument("--patterns", default=env_default("PATTERNS", "kubelet,rename,inplace"),
                    help="change patterns, cycled in this order")
    ap.add_argument("--key-types", default=env_default("KEY_TYPES", "ec256,ec384,rsa2048,ec521"),
                    help=f"key types cycled through ({','.join(KEY_TYPES)})")
    ap.add_argument("--debounce", default=env_default("DEBOUNCE", None),
                    help="passed to issuerd serve --debounce (default: issuerd's own, 100ms)")
    ap.add_argument("--poll-interval", default=env_default("POLL_INTERVAL", None),
                    help="passed to issuerd serve --poll-interval (default: issuerd's own, 60s)")
    ap.add_argument("--pause-ms", type=float, default=env_default("PAUSE_MS", 200, float),
                    help="pause after a rotation is observed")
    ap.add_argument("--poll-ms", type=float, default=env_default("POLL_MS", 2, float),
                    help="latency poller interval")
    ap.add_argument("--observe-timeout", type=float, default=env_default("OBSERVE_TIMEOUT", 5, float),
                    help="seconds to wait for a rotation to be served")
    ap.add_argument("--warmup", type=float, default=env_default("WARMUP", 1, float))
    ap.add_argument("--cooldown", type=float, default=env_default("COOLDOWN", 1, float))
    ap.add_argument("--budget", type=float, default=env_default("BUDGET", 60, float),
                    help="wall-clock seconds; rotations stop early to stay within it")
    ap.add_argument("--bin", default=env_default("ISSUERD_BIN", None),
                    help="issuerd binary (default: target/release/issuerd, built if missing)")
    ap.add_argument("--build", action="store_true", help="run cargo build --release first")
    ap.add_argument("--keep", action="store_true", default=bool(env_default("KEEP", 0, int)),
                    help="keep the temp dir (keys, rendered documents, issuerd.log)")
    ap.add_argument("--json", default=env_default("RESULTS_JSON", None), help="also write a JSON summary")
    ap.add_argument("--server-log", default=None, metavar="FILTER",
                    help="ISSUERD_LOG for issuerd (e.g. issuerd=debug); combine with --keep to read it")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per rotation")
    args = ap.parse_args(argv)
    if min(args.rotations, args.conns, args.workers, args.pipeline) < 1:
        ap.error("--rotations, --conns, --workers and --pipeline must be >= 1")
    if args.conns < 2:
        ap.error("--conns must be >= 2 (both documents are loaded)")
    return args


def main(argv=None):
    global SERVER_LOG_LEVEL
    args = parse_args(sys.argv[1:] if argv is None else argv)
    SERVER_LOG_LEVEL = args.server_log
    if sys.platform != "linux":
        print("this benchmark needs Linux (inotify, prctl)", file=sys.stderr)
        return 2
    if shutil.which("openssl") is None:
        print("openssl is required to generate keys", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="issuerd-rotation-"))
    resources = {}

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return asyncio.run(run(args, work, resources))
    except SetupError as error:
        log(f"setup failed: {error}")
        if "server_log" in resources and resources["server_log"].exists():
            tail = resources["server_log"].read_text(errors="replace")[-2000:]
            log(f"issuerd log tail:\n{tail}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception:  # a bug or an environment problem, not a correctness finding: exit 2
        import traceback

        traceback.print_exc()
        return 2
    finally:
        cleanup(resources, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
