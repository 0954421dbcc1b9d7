#!/usr/bin/env python3
"""Mirror benchmark: how long a key rotation takes to reach the bucket, and how many writes it costs.

Starts moto (S3) from target/interop-venv (run scripts/test.sh once) with a versioned, publicly
readable bucket, starts `issuerd serve --mirror` against it, then rotates the key file N times.
For each rotation it measures the time from the file rename until an anonymous GET of the bucket's
JWKS returns the bytes issuerd serves. Writes are counted from the bucket's object versions:
each rotation must cost exactly 2 (JWKS, discovery) and a restart 0. Exit status 1 when a write
count is wrong, 2 when the run could not be set up. Everything runs on 127.0.0.1.

    target/interop-venv/bin/python benches/mirror/run.py --rotations 20
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["ec256.pub.pem", "ec384.pub.pem", "rsa2048.pub.pem", "ec521.pub.pem"]
ISSUER = "https://oidc.example.test/bench"
BUCKET = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    # An explicit Content-Type: urllib's default (form-urlencoded) makes moto route by the body.
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"error: {what} within {timeout}s")
        time.sleep(0.005)


def versions(s3: str) -> int:
    _, body = http("GET", f"{s3}/{BUCKET}?versions")
    return len(re.findall(rb"<Version>", body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--issuerd", default=str(ROOT / "target/debug/issuerd"))
    args = parser.parse_args()

    python = ROOT / "target/interop-venv/bin/python"
    if not python.exists() or not Path(args.issuerd).exists():
        print("error: run scripts/test.sh (moto) and cargo build first", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="issuerd-mirror-bench-"))
    children: list[subprocess.Popen] = []
    try:
        port = free_port()
        s3 = f"http://127.0.0.1:{port}"
        children.append(subprocess.Popen(
            [python, ROOT / "tests/it/common/moto_s3.py", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "moto did not start")
        http("PUT", f"{s3}/{BUCKET}")
        http("PUT", f"{s3}/{BUCKET}?versioning",
             b'<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>')
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                  f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}')
        http("PUT", f"{s3}/{BUCKET}?policy", policy.encode())

        key = tmp / "sa.pub"
        shutil.copy(ROOT / "tests/fixtures/keys" / KEYS[0], key)
        listen = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", ISSUERD_LOG="warn")
        serve = [args.issuerd, "serve", "--issuer", ISSUER, "--key-file", str(key), "--listen", listen,
                 "--mirror", f"s3://{BUCKET}/bench", "--s3-endpoint", s3,
                 "--public-url", f"{s3}/{BUCKET}/bench", "--mirror-required"]

        def start() -> subprocess.Popen:
            child = subprocess.Popen(serve, env=env, stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL)
            children.append(child)
            wait_until(lambda: http("GET", f"http://{listen}/readyz")[0] == 200, 30,
                       "issuerd was not ready (mirror in sync)")
            return child

        served = lambda: http("GET", f"http://{listen}/bench/openid/v1/jwks")[1]
        in_bucket = lambda: http("GET", f"{s3}/{BUCKET}/bench/openid/v1/jwks")[1]

        issuerd = start()
        failures = 0
        if versions(s3) != 2:
            print(f"first sync wrote {versions(s3)} objects, expected 2")
            failures += 1
        latencies = []
        for i in range(1, args.rotations + 1):
            before = versions(s3)
            old = served()
            staged = tmp / ".next"
            shutil.copy(ROOT / "tests/fixtures/keys" / KEYS[i % len(KEYS)], staged)
            t0 = time.monotonic()
            os.rename(staged, key)
            wait_until(lambda: (b := in_bucket()) != old and b == served(), 10,
                       f"rotation {i} did not reach the bucket")
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)  # the discovery write follows the JWKS
            wait_until(lambda: versions(s3) >= before + 2, 10, "discovery not written")
            if versions(s3) - before != 2:
                print(f"rotation {i}: {versions(s3) - before} writes, expected 2")
                failures += 1

        before = versions(s3)
        issuerd.terminate()
        issuerd.wait(10)
        issuerd = start()
        time.sleep(0.5)
        restart_writes = versions(s3) - before
        if restart_writes != 0:
            failures += 1
        issuerd.terminate()
        issuerd.wait(10)

        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"rotations: {len(latencies)}  rotation -> bucket: median {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms (debounce 100 ms included)")
        print(f"writes per rotation: 2 expected, wrong in {failures - (restart_writes != 0)} rotations; "
              f"writes on restart: {restart_writes}")
        return 1 if failures else 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
