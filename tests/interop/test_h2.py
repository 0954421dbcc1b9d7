"""HTTP/2 conformance of `issuerd serve`, checked from the wire (a small h2spec).

Independent of issuerd's own HTTP/2 engine: normal requests go through hyper-h2's client state
machine (`h2`), and raw, malformed and out-of-order frames are built byte by byte (with
`hyperframe` and `hpack` where a frame is well formed). Every case runs twice, over h2c with
prior knowledge on the plain port and over TLS with ALPN `h2`, against one `issuerd serve` per
transport started for this module (a test CA and leaf for localhost are made here).

The served JWKS is made larger than 16,384 bytes (the fixture keys plus generated P-521 keys), so
that flow control and SETTINGS_MAX_FRAME_SIZE are exercised by a real document.

Assertions follow RFC 9113 (HTTP/2), RFC 7541 (HPACK) and RFC 9110 (semantics): exact GOAWAY and
RST_STREAM codes, exact bodies and header values (compared with what the same server answers
over HTTP/1.1), and for connection errors that the connection is closed after the GOAWAY. Every
socket read has a timeout, so a server that hangs fails the test instead of hanging it.

The file was written against hyper's h2 server, issuerd's engine before its own; where hyper
departs from the RFCs (noted at each case) the RFC's answer is what is asserted.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import http.client
import signal
import socket
import ssl
import struct
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from test_https import _make_ca, _make_leaf
from test_interop import ISSUERD_BIN, KEYS_DIR, free_port

# --------------------------------------------------------------------------- constants

TIMEOUT_S = 5.0  # every socket read
QUIET_S = 0.5  # "nothing more arrives": how long a test listens for frames that must not come
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3
EXTRA_P521_KEYS = 100  # makes the JWKS about 25 KB: more than one 16 KiB DATA frame

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/openid/v1/jwks"
MISSING = "/no/such/document"
NOT_FOUND_BODY = b"404 page not found\n"

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_MAX_FRAME_SIZE = 16384
DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1

# frame types (RFC 9113 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# SETTINGS identifiers
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
# error codes (RFC 9113 section 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

# Headers whose values must be the same over HTTP/1.1 and h2 for a document.
COMPARED_HEADERS = ("content-type", "etag", "cache-control", "access-control-allow-origin", "content-length")


def err(code: int | None) -> str:
    return "none" if code is None else f"{ERROR_NAMES.get(code, 'unknown')}({code:#x})"


# --------------------------------------------------------------------------- frame building


def raw_frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"", *, length: int | None = None) -> bytes:
    """A frame exactly as given: `length` may lie, the stream id may be anything (31 bits)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + struct.pack(">BBI", ftype, flags, stream_id & 0x7FFFFFFF) + payload


def settings_payload(values: dict[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", k, v) for k, v in values.items())


def header_block(headers) -> bytes:
    """An HPACK block that does not touch the dynamic table (static-table indices and literals
    never indexed), so blocks can be built and dropped independently; names kept as given."""
    return hpack.Encoder().encode(
        [NeverIndexedHeaderTuple(k.encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v)
         for k, v in headers],
        huffman=False,
    )


# --------------------------------------------------------------------------- test PKI (test_https.py's)


def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, leaf chain, leaf key) for localhost and 127.0.0.1."""
    ca_key, ca = _make_ca("issuerd h2 test CA")
    leaf_key, leaf = _make_leaf(ca_key, ca)
    ca_path, cert_path, key_path = d / "ca.crt", d / "tls.crt", d / "tls.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    transport: str  # "h2c" or "tls"
    proc: subprocess.Popen
    port: int
    log_path: Path
    ca: Path | None

    @property
    def tls(self) -> bool:
        return self.transport == "tls"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        return "localhost" if self.tls else "127.0.0.1"

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"

    def connect(self, alpn: tuple[str, ...] = ("h2",)):
        """A connected socket on which the next bytes are HTTP/2 (the TLS handshake done)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.tls:
            return sock
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.ca))
        ctx.set_alpn_protocols(list(alpn))
        # suppress_ragged_eofs=False: a close without close_notify is told apart from a clean one.
        tls = ctx.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
        tls.settimeout(TIMEOUT_S)
        return tls

    def h1(self, method: str, path: str, headers: dict | None = None):
        """(status, {lowercased name: value}, body) over HTTP/1.1 from the same listener."""
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=str(self.ca))
            ctx.set_alpn_protocols(["http/1.1"])
            conn = http.client.HTTPSConnection("localhost", self.port, timeout=TIMEOUT_S, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            conn.close()


def _wait_ready(server: Server) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"{server.scheme}://{server.authority}/readyz"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        with contextlib.suppress(requests.RequestException):
            r = requests.get(url, timeout=1, verify=str(server.ca) if server.tls else True)
            if r.status_code == 200 and server.proc.poll() is None:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def key_files(tmp_path_factory) -> list[Path]:
    """Two fixture keys plus a file of generated P-521 public keys (a JWKS over 16 KiB)."""
    d = tmp_path_factory.mktemp("h2-keys")
    many = d / "many-p521.pem"
    many.write_bytes(
        b"".join(
            ec.generate_private_key(ec.SECP521R1()).public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for _ in range(EXTRA_P521_KEYS)
        )
    )
    return [KEYS_DIR / "rsa2048.pkcs8.pem", KEYS_DIR / "ec256.pkcs8.pem", many]


def start_issuerd(transport: str, key_files: list[Path], d: Path, extra: tuple[str, ...] = ()) -> Server:
    """`issuerd serve` on a free port, plain (h2c by prior knowledge) or TLS (ALPN h2), with
    `extra` arguments; fails the test if it does not become ready."""
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it (cargo build) or set ISSUERD_BIN")
    ca = cert = key = None
    if transport == "tls":
        ca, cert, key = make_pki(d)
    found, failures = None, []
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        cmd = [str(ISSUERD_BIN), "serve", "--listen", f"127.0.0.1:{port}"]
        if transport == "tls":
            cmd += ["--issuer", f"https://localhost:{port}", "--allow-issuer-port",
                    "--tls-cert", str(cert), "--tls-key", str(key)]
        else:
            cmd += ["--issuer", f"http://127.0.0.1:{port}", "--allow-insecure-issuer"]
        for k in key_files:
            cmd += ["--key-file", str(k)]
        cmd += list(extra)
        log_path = d / f"issuerd-{port}-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        candidate = Server(transport=transport, proc=proc, port=port, log_path=log_path, ca=ca)
        if _wait_ready(candidate):
            found = candidate
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        failures.append(f"attempt {attempt}: {' '.join(cmd)}\nexit={proc.returncode}\n{candidate.log()}")
    if found is None:
        pytest.fail(f"issuerd ({transport}) did not become ready:\n" + "\n---\n".join(failures))
    return found


def stop_issuerd(found: Server) -> None:
    """SIGTERM; it must exit 0 within STOP_TIMEOUT_S (and must not have exited before)."""
    if found.proc.poll() is not None:
        pytest.fail(f"issuerd exited on its own during the tests (exit {found.proc.returncode})\n{found.log()}")
    found.proc.send_signal(signal.SIGTERM)
    try:
        rc = found.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        found.proc.kill()
        found.proc.wait(timeout=5)
        pytest.fail(f"issuerd did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{found.log()}")
    assert rc == 0, f"issuerd exited with {rc} after SIGTERM, expected 0\n{found.log()}"


@pytest.fixture(scope="module", params=["h2c", "tls"])
def server(request, key_files, tmp_path_factory):
    """`issuerd serve` on a free port, plain (h2c by prior knowledge) or TLS (ALPN h2)."""
    transport = request.param
    found = start_issuerd(transport, key_files, tmp_path_factory.mktemp(f"h2-{transport}"))
    yield found
    stop_issuerd(found)


@dataclass
class H1Answer:
    status: int
    headers: dict
    body: bytes


@pytest.fixture(scope="module")
def h1(server) -> dict[str, H1Answer]:
    """What the server answers over HTTP/1.1 for each path (GET)."""
    out = {}
    for path in (DISCOVERY, JWKS, MISSING):
        status, headers, body = server.h1("GET", path)
        out[path] = H1Answer(status, headers, body)
    assert out[DISCOVERY].status == 200 and out[JWKS].status == 200 and out[MISSING].status == 404
    # The JWKS must span several default-sized DATA frames and exceed small windows.
    assert len(out[JWKS].body) > DEFAULT_MAX_FRAME_SIZE, len(out[JWKS].body)
    return out


# --------------------------------------------------------------------------- raw frame connection


class Closed(Exception):
    pass


@dataclass
class Response:
    stream_id: int
    status: int | None = None
    headers: list = field(default_factory=list)  # [(name, value)] as str, in order
    body: bytes = b""
    data_frames: list = field(default_factory=list)  # DATA payload sizes (flow-controlled length)
    end_on_headers: bool = False
    ended: bool = False
    reset: int | None = None  # RST_STREAM error code (the last one)
    resets: list = field(default_factory=list)  # every RST_STREAM error code, in order

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        assert len(values) <= 1, (name, values)
        return values[0] if values else None

    def names(self) -> set[str]:
        return {k for k, _ in self.headers}


class RawConn:
    """An HTTP/2 connection driven frame by frame. Frames from the server are parsed with
    hyperframe; header blocks are decoded with one HPACK decoder for the connection (the
    server's encoder has a dynamic table). Server SETTINGS are ACKed; with `auto_window`, every
    DATA frame is returned to the server's flow-control windows at once."""

    def __init__(self, server: Server, *, settings: dict[int, int] | None = None, handshake: bool = True,
                 auto_window: bool = True):
        self.server = server
        self.sock = server.connect()
        self.buf = bytearray()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.auto_window = auto_window
        self.server_settings: dict | None = None
        self.settings_acks = 0
        self.goaway: GoAwayFrame | None = None
        self.closed: str | None = None  # "eof", "eof-without-close_notify", "reset"
        self.seen: list[str] = []  # a log of frames received, for failure messages
        self.responses: dict[int, Response] = {}
        if handshake:
            self.send(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())

    # -- io
    def send(self, *chunks: bytes) -> None:
        self.sock.sendall(b"".join(chunks))

    def _answer(self, data: bytes) -> None:
        """An automatic answer (SETTINGS ACK, WINDOW_UPDATE): the server may have closed already,
        and what it sent before closing is still to be read."""
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, n: int, timeout: float) -> None:
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ssl.SSLEOFError:
                self.closed = "eof-without-close_notify"
                raise Closed
            except ssl.SSLZeroReturnError:
                self.closed = "eof"
                raise Closed
            except (ConnectionResetError, BrokenPipeError):
                self.closed = "reset"
                raise Closed
            except (socket.timeout, TimeoutError):
                raise
            if not chunk:
                self.closed = "eof"
                raise Closed
            self.buf += chunk

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self, timeout: float = TIMEOUT_S, *, quiet_ok: bool = False):
        """The next frame; None if `quiet_ok` and nothing came within `timeout`.
        Raises Closed at the end of the connection; a timeout otherwise fails the test."""
        try:
            self._fill(9, timeout)
            length = int.from_bytes(self.buf[:3], "big")
            self._fill(9 + length, timeout)  # nothing is consumed before the whole frame is here
        except (socket.timeout, TimeoutError):
            if quiet_ok and len(self.buf) < 9:
                return None
            pytest.fail(f"no complete frame within {timeout}s; frames so far: {self.seen}")
        frame, length = Frame.parse_frame_header(memoryview(self._take(9)))
        frame.parse_body(memoryview(self._take(length)))
        self._note(frame, length)
        return frame

    def _note(self, frame, length: int) -> None:
        self.seen.append(f"{type(frame).__name__}(sid={frame.stream_id}, len={length}, flags={sorted(frame.flags)}"
                         + (f", code={err(frame.error_code)}" if isinstance(frame, (GoAwayFrame, RstStreamFrame)) else "")
                         + ")")
        if isinstance(frame, SettingsFrame):
            if "ACK" in frame.flags:
                self.settings_acks += 1
            else:
                if self.server_settings is None:
                    self.server_settings = dict(frame.settings)
                self._answer(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(frame, HeadersFrame):
            block = frame.data
            while "END_HEADERS" not in frame.flags:
                cont = self.read_frame()
                assert isinstance(cont, ContinuationFrame) and cont.stream_id == frame.stream_id, self.seen
                block += cont.data
                if "END_HEADERS" in cont.flags:
                    frame.flags.add("END_HEADERS")
            frame.decoded = [(k.decode(), v.decode()) for k, v in self.decoder.decode(block, raw=True)]
            r = self.responses.setdefault(frame.stream_id, Response(frame.stream_id))
            if r.status is None or (r.status and 100 <= r.status < 200):
                r.headers = frame.decoded
                status = [v for k, v in frame.decoded if k == ":status"]
                r.status = int(status[0]) if status else None
                r.end_on_headers = "END_STREAM" in frame.flags
            if "END_STREAM" in frame.flags:
                r.ended = True
        elif isinstance(frame, DataFrame):
            r = self.responses.setdefault(frame.stream_id, Response(frame.stream_id))
            r.body += bytes(frame.data)
            r.data_frames.append(length)
            if "END_STREAM" in frame.flags:
                r.ended = True
            if self.auto_window and length:
                self._answer(WindowUpdateFrame(0, window_increment=length).serialize()
                          + (WindowUpdateFrame(frame.stream_id, window_increment=length).serialize()
                             if not r.ended else b""))
        elif isinstance(frame, RstStreamFrame):
            r = self.responses.setdefault(frame.stream_id, Response(frame.stream_id))
            r.reset = frame.error_code
            r.resets.append(frame.error_code)
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame

    # -- requests
    def request_headers(self, path: str, method: str = "GET", extra=()) -> list:
        return [(":method", method), (":scheme", self.server.scheme), (":authority", self.server.authority),
                (":path", path), *extra]

    def request(self, stream_id: int, path: str, method: str = "GET", extra=(), *, end_stream: bool = True) -> None:
        self.send(self.headers_frame(stream_id, self.request_headers(path, method, extra), end_stream=end_stream))

    @staticmethod
    def headers_frame(stream_id: int, headers, *, end_stream: bool = True, end_headers: bool = True) -> bytes:
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return raw_frame(HEADERS, flags, stream_id, header_block(headers))

    def response(self, stream_id: int, timeout: float = TIMEOUT_S) -> Response:
        """Frames until `stream_id` ends (END_STREAM) or is reset; fails on GOAWAY or close."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.responses.get(stream_id)
            if r is not None and (r.ended or r.reset is not None):
                return r
            if self.goaway is not None:
                pytest.fail(f"GOAWAY {err(self.goaway.error_code)} while waiting for stream {stream_id}: {self.seen}")
            try:
                self.read_frame(max(0.05, deadline - time.monotonic()))
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) while waiting for stream {stream_id}: {self.seen}")

    def wait_settings(self) -> dict:
        """The server's SETTINGS (its connection preface must begin with a SETTINGS frame)."""
        while self.server_settings is None:
            first = not self.seen
            try:
                f = self.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) before the server's SETTINGS: {self.seen}")
            if first:
                assert isinstance(f, SettingsFrame) and "ACK" not in f.flags, \
                    f"the server's first frame must be SETTINGS (RFC 9113 section 3.4): {self.seen}"
        return self.server_settings

    def ping(self, payload: bytes = b"liveness") -> None:
        """A PING that must be ACKed with the same payload, with no GOAWAY before it."""
        self.send(PingFrame(0, opaque_data=payload).serialize())
        while True:
            try:
                f = self.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) instead of answering PING: {self.seen}")
            if self.goaway is not None:
                pytest.fail(f"GOAWAY {err(self.goaway.error_code)} instead of answering PING: {self.seen}")
            if isinstance(f, PingFrame) and "ACK" in f.flags:
                assert f.opaque_data == payload, (f.opaque_data, payload)
                return

    def wait_headers(self, *stream_ids: int) -> None:
        """Frames until every stream has its response HEADERS (which flow control never holds)."""
        while not all(self.responses.get(s) is not None and self.responses[s].status is not None
                      for s in stream_ids):
            if self.goaway is not None:
                pytest.fail(f"GOAWAY {err(self.goaway.error_code)} while waiting for HEADERS: {self.seen}")
            try:
                self.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) while waiting for HEADERS: {self.seen}")

    def quiet(self, duration: float = QUIET_S) -> list:
        """Every frame that arrives within `duration`."""
        frames, deadline = [], time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                f = self.read_frame(left, quiet_ok=True)
            except Closed:
                pytest.fail(f"connection closed ({self.closed}): {self.seen}")
            if f is None:
                break
            frames.append(f)
        return frames

    def expect_goaway(self, codes: tuple[int, ...]) -> GoAwayFrame:
        """A GOAWAY with one of `codes`, then the end of the connection (RFC 9113 section 5.4.1:
        after a connection error the endpoint sends GOAWAY and closes the TCP connection)."""
        while self.goaway is None:
            try:
                self.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) without GOAWAY; expected "
                            f"{' or '.join(err(c) for c in codes)}; frames: {self.seen}")
        g = self.goaway
        assert g.stream_id == 0, self.seen
        assert g.error_code in codes, (
            f"GOAWAY {err(g.error_code)}, expected {' or '.join(err(c) for c in codes)}; frames: {self.seen}")
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                self.read_frame(max(0.05, deadline - time.monotonic()))
            pytest.fail(f"connection still open {TIMEOUT_S}s after GOAWAY: {self.seen}")
        except Closed:
            pass
        return g

    def expect_stream_error_or_goaway(self, stream_id: int, code: int) -> bool:
        """RST_STREAM `code` on the stream (True), or GOAWAY `code` and the end of the connection
        (False): RFC 9113 section 5.4 lets an endpoint treat any stream error as a connection
        error. The stream must not have been served."""
        while self.goaway is None and not (stream_id in self.responses and self.responses[stream_id].reset is not None):
            try:
                self.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({self.closed}) with neither RST_STREAM nor GOAWAY: {self.seen}")
        if self.goaway is not None:
            assert stream_id not in self.responses or not self.responses[stream_id].ended, self.seen
            self.expect_goaway((code,))
            return False
        self.expect_stream_error(stream_id, code)
        return True

    def expect_stream_error(self, stream_id: int, code: int) -> Response:
        r = self.response(stream_id)
        assert r.reset == code, (
            f"stream {stream_id}: expected RST_STREAM {err(code)}, got status {r.status}, "
            f"reset {err(r.reset)}; frames: {self.seen}")
        return r


@contextlib.contextmanager
def raw(server: Server, **kw):
    conn = RawConn(server, **kw)
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------- h2 (hyper-h2) client


class H2Client:
    """Requests through hyper-h2's client state machine (which checks the server's framing,
    flow control and HPACK as it goes)."""

    def __init__(self, server: Server, *, settings: dict | None = None):
        self.server = server
        self.sock = server.connect()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.responses: dict[int, Response] = {}
        self.terminated = None
        self.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, path: str, method: str = "GET", extra=()) -> list:
        return [(":method", method), (":scheme", self.server.scheme), (":authority", self.server.authority),
                (":path", path), *extra]

    def start(self, path: str, method: str = "GET", extra=(), *, end_stream: bool = True, flush: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, self.headers(path, method, extra), end_stream=end_stream)
        self.responses[sid] = Response(sid)
        if flush:
            self.flush()
        return sid

    def collect(self, stream_ids, timeout: float = TIMEOUT_S) -> dict[int, Response]:
        pending = set(stream_ids)
        deadline = time.monotonic() + timeout
        while pending:
            if self.terminated is not None:
                pytest.fail(f"connection terminated: {self.terminated}")
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"streams {sorted(pending)} not answered within {timeout}s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                pytest.fail(f"streams {sorted(pending)} not answered within {timeout}s")
            if not data:
                pytest.fail(f"connection closed with streams {sorted(pending)} unanswered")
            for ev in self.conn.receive_data(data):
                self._event(ev, pending)
            self.flush()
        return {sid: self.responses[sid] for sid in stream_ids}

    def _event(self, ev, pending: set) -> None:
        if isinstance(ev, h2.events.ResponseReceived):
            r = self.responses[ev.stream_id]
            r.headers = list(ev.headers)
            r.status = int(r.header(":status"))
            r.end_on_headers = ev.stream_ended is not None
        elif isinstance(ev, h2.events.DataReceived):
            r = self.responses[ev.stream_id]
            r.body += ev.data
            r.data_frames.append(ev.flow_controlled_length)
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.responses[ev.stream_id].ended = True
            pending.discard(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.responses[ev.stream_id].reset = ev.error_code
            pending.discard(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.terminated = ev

    def get(self, path: str, method: str = "GET", extra=()) -> Response:
        sid = self.start(path, method, extra)
        return self.collect([sid])[sid]


# --------------------------------------------------------------------------- 1. normal requests


def check_date(value: str | None) -> None:
    assert value is not None, "no date header"
    assert value.endswith(" GMT"), value  # IMF-fixdate (RFC 9110 section 5.6.7)
    when = email.utils.parsedate_to_datetime(value)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 60, (value, now)


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_get_documents_match_http1(server, h1, path):
    with H2Client(server) as c:
        r = c.get(path)
    want = h1[path]
    assert r.status == 200 and r.ended and r.reset is None
    assert r.body == want.body
    for name in COMPARED_HEADERS:
        assert r.header(name) == want.headers.get(name), (name, r.headers, want.headers)
    assert r.header("content-length") == str(len(want.body))
    assert r.header("content-type").split(";")[0] == ("application/json" if path == DISCOVERY else "application/jwk-set+json")
    assert r.header("cache-control") == "public, max-age=3600"
    assert r.header("access-control-allow-origin") == "*"
    assert r.header("etag").startswith('"') and r.header("etag").endswith('"')  # strong
    check_date(r.header("date"))
    # Connection-specific fields are forbidden in HTTP/2 (RFC 9113 section 8.2.2).
    assert not r.names() & {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}, r.headers
    assert all(k == k.lower() for k, _ in r.headers), r.headers


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_head_has_headers_and_no_body(server, h1, path):
    with raw(server) as c:
        c.request(1, path, "HEAD")
        r = c.response(1)
    want = h1[path]
    assert r.status == 200 and r.reset is None
    assert r.end_on_headers, f"HEAD: END_STREAM expected on HEADERS: {c.seen}"
    assert r.data_frames == [], f"HEAD: no DATA expected: {c.seen}"
    assert r.header("content-length") == str(len(want.body))
    for name in COMPARED_HEADERS:
        assert r.header(name) == want.headers.get(name), (name, r.headers)


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_if_none_match_is_304_without_body(server, h1, path):
    etag = h1[path].headers["etag"]
    with H2Client(server) as c:
        r = c.get(path, extra=[("if-none-match", etag)])
        other = c.get(path, extra=[("if-none-match", '"not-the-etag"')])
    assert r.status == 304 and r.body == b"" and r.reset is None
    assert sum(r.data_frames) == 0, r.data_frames
    assert r.header("etag") == etag
    assert other.status == 200 and other.body == h1[path].body


def test_unknown_path_is_404(server, h1):
    with H2Client(server) as c:
        r = c.get(MISSING)
    assert r.status == 404
    assert r.body == NOT_FOUND_BODY == h1[MISSING].body
    assert r.header("x-content-type-options") == "nosniff" == h1[MISSING].headers.get("x-content-type-options")
    assert r.header("content-type") == h1[MISSING].headers.get("content-type")
    assert r.header("content-length") in (None, str(len(NOT_FOUND_BODY)))
    check_date(r.header("date"))


@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_post_to_a_document_is_405(server, path):
    with H2Client(server) as c:
        r = c.get(path, method="POST")
    status, headers, _ = server.h1("POST", path)
    assert status == 405
    assert r.status == 405 and r.reset is None
    assert r.header("allow") == "GET, HEAD" == headers.get("allow")
    check_date(r.header("date"))


def test_tls_alpn_prefers_h2(server):
    if not server.tls:
        # No ALPN in plaintext: the one port speaks HTTP/1.1 and h2c (prior knowledge) alike.
        status, _, body = server.h1("GET", DISCOVERY)
        with H2Client(server) as c:
            r = c.get(DISCOVERY)
        assert (status, r.status, r.body) == (200, 200, body)
        return
    s = server.connect(alpn=("http/1.1", "h2"))
    try:
        assert s.selected_alpn_protocol() == "h2"
    finally:
        s.close()


# --------------------------------------------------------------------------- 2. many streams


@pytest.mark.parametrize("table_size", [0, 100, 4096])
def test_nghttp2_client_with_any_header_table_size(server, h1, table_size):
    """nghttp2 (h2load) with SETTINGS_HEADER_TABLE_SIZE lowered: it refuses (COMPRESSION_ERROR)
    a response block that does not begin with a dynamic table size update (RFC 7541 4.2)."""
    h2load = shutil.which("h2load")
    assert h2load, "h2load not found: scripts/test-deps.sh installs nghttp2-client"
    url = f"{server.scheme}://{server.authority}{JWKS}"
    out = subprocess.run(
        [h2load, "-n", "200", "-c", "2", "-m", "10", f"--header-table-size={table_size}", url],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout
    assert "200 succeeded, 0 failed" in out, out
    assert "status codes: 200 2xx" in out, out


def test_100_pipelined_requests_on_one_connection(server, h1):
    paths = [DISCOVERY, JWKS, MISSING, "/healthz"]
    with H2Client(server) as c:
        sids = {}
        for i in range(100):
            sid = c.start(paths[i % 4], flush=False)
            sids[sid] = paths[i % 4]
            if i % 7 == 6:  # seven HEADERS per TCP write
                c.flush()
        c.flush()
        assert sorted(sids) == list(range(1, 200, 2))
        got = c.collect(list(sids), timeout=20)
    for sid, path in sids.items():
        r = got[sid]
        assert r.stream_id == sid and r.ended and r.reset is None, (sid, r)
        if path == "/healthz":
            assert r.status == 200, (sid, r.status)
        else:
            assert (r.status, r.body) == (h1[path].status, h1[path].body), (sid, path, r.status)


# --------------------------------------------------------------------------- 3. flow control


def test_stream_window_limits_data_until_window_update(server, h1):
    body = h1[JWKS].body
    disc = h1[DISCOVERY].body
    assert len(disc) > 100
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: 100}, auto_window=False) as c:
        c.request(1, JWKS)
        c.request(3, JWKS)
        c.request(5, DISCOVERY)
        c.wait_headers(1, 3, 5)
        c.quiet()
        for sid in (1, 3, 5):
            r = c.responses.get(sid)
            assert r is not None and r.status == 200, (sid, c.seen)
            assert sum(r.data_frames) <= 100 and not r.ended, (sid, r.data_frames, c.seen)
        # Open stream 1 alone: only it may progress.
        c.send(WindowUpdateFrame(1, window_increment=len(body)).serialize())
        r1 = c.response(1)
        assert r1.body == body
        c.quiet(0.3)
        for sid in (3, 5):
            assert sum(c.responses[sid].data_frames) <= 100 and not c.responses[sid].ended, (sid, c.seen)
        c.send(WindowUpdateFrame(3, window_increment=len(body)).serialize()
               + WindowUpdateFrame(5, window_increment=len(disc)).serialize())
        assert c.response(3).body == body
        assert c.response(5).body == disc


def test_initial_window_size_change_applies_to_open_streams(server, h1):
    # RFC 9113 section 6.9.2: a change of SETTINGS_INITIAL_WINDOW_SIZE adjusts every open stream.
    body = h1[JWKS].body
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: 100}, auto_window=False) as c:
        c.request(1, JWKS)
        c.wait_headers(1)
        c.quiet()
        r = c.responses[1]
        assert r.status == 200 and sum(r.data_frames) <= 100 and not r.ended, c.seen
        c.send(SettingsFrame(0, settings={SETTINGS_INITIAL_WINDOW_SIZE: 100 + len(body)}).serialize())
        assert c.response(1).body == body  # no WINDOW_UPDATE was sent for the stream


def test_connection_window_limits_data_across_streams(server, h1):
    body = h1[JWKS].body
    n = DEFAULT_WINDOW // len(body) + 2  # together more than the connection window
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW}, auto_window=False) as c:
        for i in range(n):
            c.request(1 + 2 * i, JWKS)
        c.wait_headers(*(1 + 2 * i for i in range(n)))
        c.quiet()
        sent = sum(sum(r.data_frames) for r in c.responses.values())
        assert sent <= DEFAULT_WINDOW, f"{sent} bytes of DATA with a connection window of {DEFAULT_WINDOW}"
        assert not all(r.ended for r in c.responses.values())
        assert all(size <= DEFAULT_MAX_FRAME_SIZE for r in c.responses.values() for size in r.data_frames)
        c.send(WindowUpdateFrame(0, window_increment=n * len(body)).serialize())
        for i in range(n):
            assert c.response(1 + 2 * i).body == body, i


def exhaust_connection_window(c: RawConn, body_len: int) -> int:
    """JWKS requests on streams 1, 3, ... (never acknowledged) until the server has spent its
    whole connection window; returns the next free stream id. A stream opened after this gets
    no DATA, so its send window stays exactly SETTINGS_INITIAL_WINDOW_SIZE."""
    n = DEFAULT_WINDOW // body_len + 1
    for i in range(n):
        c.request(1 + 2 * i, JWKS)
    deadline = time.monotonic() + TIMEOUT_S
    while (sent := sum(sum(r.data_frames) for r in c.responses.values())) < DEFAULT_WINDOW:
        if time.monotonic() > deadline:
            pytest.fail(f"the server sent {sent} of its {DEFAULT_WINDOW}-byte connection window: {c.seen}")
        try:
            c.read_frame(max(0.05, deadline - time.monotonic()))
        except Closed:
            pytest.fail(f"connection closed ({c.closed}): {c.seen}")
    assert sent == DEFAULT_WINDOW, c.seen
    return 1 + 2 * n


def test_window_update_0_on_a_stream_is_stream_error(server, h1):
    # RFC 9113 section 6.9: increment 0 on a stream is a stream error PROTOCOL_ERROR. A connection
    # error PROTOCOL_ERROR is accepted too (section 5.4 allows it), as hyper does that: h2 0.4.20
    # refuses to load such a WINDOW_UPDATE (InvalidWindowUpdateValue) and ends the connection.
    with raw(server, auto_window=False) as c:
        sid = exhaust_connection_window(c, len(h1[JWKS].body))
        c.request(sid, JWKS)
        c.wait_headers(sid)
        c.send(raw_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 0)))
        if c.expect_stream_error_or_goaway(sid, PROTOCOL_ERROR):
            c.ping()


def test_stream_window_overflow_is_stream_error(server, h1):
    # RFC 9113 section 6.9.1: a stream window above 2^31-1 is a stream error FLOW_CONTROL_ERROR.
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW}, auto_window=False) as c:
        sid = exhaust_connection_window(c, len(h1[JWKS].body))
        c.request(sid, JWKS)  # its window: 2^31-1, none of it spent (the connection window is 0)
        c.wait_headers(sid)
        c.send(WindowUpdateFrame(sid, window_increment=1).serialize())
        c.expect_stream_error(sid, FLOW_CONTROL_ERROR)
        c.ping()


def test_initial_window_size_change_overflowing_a_stream_is_connection_error(server, h1):
    # RFC 9113 section 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes a stream window
    # above 2^31-1 is a connection error FLOW_CONTROL_ERROR.
    with raw(server, auto_window=False) as c:
        sid = exhaust_connection_window(c, len(h1[JWKS].body))
        c.request(sid, JWKS)
        c.wait_headers(sid)
        c.send(WindowUpdateFrame(sid, window_increment=MAX_WINDOW - DEFAULT_WINDOW).serialize())  # now 2^31-1
        c.send(SettingsFrame(0, settings={SETTINGS_INITIAL_WINDOW_SIZE: DEFAULT_WINDOW + 1}).serialize())
        c.expect_goaway((FLOW_CONTROL_ERROR,))


def test_data_frames_respect_default_max_frame_size(server, h1):
    body = h1[JWKS].body
    with raw(server) as c:
        c.request(1, JWKS)
        r = c.response(1)
    assert r.body == body
    assert len(r.data_frames) >= 2
    assert max(r.data_frames) <= DEFAULT_MAX_FRAME_SIZE, r.data_frames


# --------------------------------------------------------------------------- 4. request with a body


@pytest.mark.parametrize("split", ["one-write", "body-later"])
def test_request_with_body_is_answered_and_connection_stays_usable(server, h1, split):
    with raw(server) as c:
        head = c.headers_frame(1, c.request_headers(JWKS, "POST", [("content-length", "1010")]), end_stream=False)
        body = DataFrame(1, data=b"a" * 1000).serialize() + DataFrame(1, data=b"b" * 10, flags=["END_STREAM"]).serialize()
        if split == "one-write":
            c.send(head + body)
        else:
            c.send(head)
            time.sleep(0.05)
            c.send(body)
        r = c.response(1)
        # The server may answer before reading the body and then reset with NO_ERROR
        # (RFC 9113 section 8.1); any other reset is an error.
        assert r.status == 405 and r.header("allow") == "GET, HEAD", c.seen
        assert r.reset in (None, NO_ERROR), c.seen
        c.request(3, JWKS)
        r3 = c.response(3)
        assert r3.status == 200 and r3.body == h1[JWKS].body
        c.ping()


def test_request_with_body_and_trailers(server, h1):
    with raw(server) as c:
        c.send(c.headers_frame(1, c.request_headers(MISSING, "POST"), end_stream=False)
               + DataFrame(1, data=b"x" * 100).serialize()
               + c.headers_frame(1, [("x-trailer", "1")], end_stream=True))
        r = c.response(1)
        assert r.status == 404 and r.body == NOT_FOUND_BODY and r.reset in (None, NO_ERROR), c.seen
        c.request(3, DISCOVERY)
        assert c.response(3).body == h1[DISCOVERY].body


# --------------------------------------------------------------------------- 5. connection errors


def hdr_get(c: RawConn, sid: int, flags: int = END_HEADERS | END_STREAM) -> bytes:
    return raw_frame(HEADERS, flags, sid, header_block(c.request_headers(DISCOVERY)))


def oversized_headers(c: RawConn) -> bytes:
    """A well-formed HEADERS frame one byte longer than the server's SETTINGS_MAX_FRAME_SIZE."""
    limit = c.server_settings.get(SETTINGS_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE)
    base = c.request_headers(DISCOVERY)
    filler = limit - len(header_block(base + [("x-filler", "")]))
    while len(block := header_block(base + [("x-filler", "a" * filler)])) > limit + 1:
        filler -= 1
    assert len(block) == limit + 1
    return raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block)


def _after_used_stream(c: RawConn) -> bytes:
    c.request(5, DISCOVERY)
    c.response(5)
    return hdr_get(c, 3)


CONNECTION_ERRORS = {
    # name: (frames to send after the handshake, accepted GOAWAY codes)
    "max-frame-size-exceeded": (lambda c: oversized_headers(c), (FRAME_SIZE_ERROR,)),
    "ping-length-7": (lambda c: raw_frame(PING, 0, 0, b"1234567"), (FRAME_SIZE_ERROR,)),
    "ping-length-9": (lambda c: raw_frame(PING, 0, 0, b"123456789"), (FRAME_SIZE_ERROR,)),
    "ping-on-stream-1": (lambda c: raw_frame(PING, 0, 1, b"12345678"), (PROTOCOL_ERROR,)),
    "settings-length-5": (lambda c: raw_frame(SETTINGS, 0, 0, b"\0\x03\0\0\0"), (FRAME_SIZE_ERROR,)),
    "settings-ack-with-payload": (
        lambda c: raw_frame(SETTINGS, ACK, 0, settings_payload({SETTINGS_MAX_CONCURRENT_STREAMS: 10})),
        (FRAME_SIZE_ERROR,)),
    "settings-on-stream-1": (
        lambda c: raw_frame(SETTINGS, 0, 1, settings_payload({SETTINGS_MAX_CONCURRENT_STREAMS: 10})),
        (PROTOCOL_ERROR,)),
    "settings-initial-window-2^31": (
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload({SETTINGS_INITIAL_WINDOW_SIZE: 2**31})),
        (FLOW_CONTROL_ERROR,)),
    "settings-enable-push-2": (
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload({SETTINGS_ENABLE_PUSH: 2})), (PROTOCOL_ERROR,)),
    "settings-max-frame-size-16383": (
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload({SETTINGS_MAX_FRAME_SIZE: 16383})), (PROTOCOL_ERROR,)),
    "settings-max-frame-size-2^24": (
        lambda c: raw_frame(SETTINGS, 0, 0, settings_payload({SETTINGS_MAX_FRAME_SIZE: 2**24})), (PROTOCOL_ERROR,)),
    "headers-on-stream-0": (lambda c: hdr_get(c, 0), (PROTOCOL_ERROR,)),
    "headers-on-even-stream": (lambda c: hdr_get(c, 2), (PROTOCOL_ERROR,)),
    "data-on-stream-0": (lambda c: raw_frame(DATA, 0, 0, b"hello"), (PROTOCOL_ERROR,)),
    "data-on-idle-stream": (lambda c: raw_frame(DATA, END_STREAM, 1, b"hello"), (PROTOCOL_ERROR,)),
    "rst-stream-on-idle-stream": (lambda c: RstStreamFrame(1, error_code=CANCEL).serialize(), (PROTOCOL_ERROR,)),
    "rst-stream-length-3": (
        lambda c: hdr_get(c, 1, END_HEADERS) + raw_frame(RST_STREAM, 0, 1, b"\0\0\x08"), (FRAME_SIZE_ERROR,)),
    "window-update-length-3": (lambda c: raw_frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"), (FRAME_SIZE_ERROR,)),
    "continuation-without-headers": (
        lambda c: raw_frame(CONTINUATION, END_HEADERS, 1, header_block(c.request_headers(DISCOVERY))),
        (PROTOCOL_ERROR,)),
    "headers-then-data-instead-of-continuation": (
        lambda c: hdr_get(c, 1, END_STREAM) + raw_frame(DATA, END_STREAM, 1, b"x"), (PROTOCOL_ERROR,)),
    "headers-then-ping-instead-of-continuation": (
        lambda c: hdr_get(c, 1, END_STREAM) + raw_frame(PING, 0, 0, b"12345678"), (PROTOCOL_ERROR,)),
    "headers-then-continuation-of-other-stream": (
        lambda c: hdr_get(c, 1, END_STREAM) + raw_frame(CONTINUATION, END_HEADERS, 3, b""), (PROTOCOL_ERROR,)),
    "window-update-0-on-stream-0": (lambda c: raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), (PROTOCOL_ERROR,)),
    "connection-window-overflow": (
        lambda c: WindowUpdateFrame(0, window_increment=MAX_WINDOW).serialize(), (FLOW_CONTROL_ERROR,)),
    "hpack-index-0": (lambda c: raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"), (COMPRESSION_ERROR,)),
    "hpack-index-out-of-range": (
        # :method GET, then index 70 with an empty dynamic table (62 and above are dynamic)
        lambda c: raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\xc6"), (COMPRESSION_ERROR,)),
    "hpack-table-size-update-above-limit": (
        # a dynamic table size update to 2^20 > SETTINGS_HEADER_TABLE_SIZE (4096, RFC 7541 section 4.2)
        lambda c: raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\xff\x3f" + header_block(c.request_headers(DISCOVERY))),
        (COMPRESSION_ERROR,)),
    "headers-padding-too-long": (
        # pad length 200 with a shorter payload (RFC 9113 section 6.2)
        lambda c: raw_frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([200]) + b"\x82\x84"),
        (PROTOCOL_ERROR,)),
    "data-padding-too-long": (
        lambda c: hdr_get(c, 1, END_HEADERS) + raw_frame(DATA, END_STREAM | PADDED, 1, bytes([10]) + b"abc"),
        (PROTOCOL_ERROR,)),
    "push-promise-from-client": (
        lambda c: hdr_get(c, 1, END_HEADERS)
        + raw_frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + header_block(c.request_headers(JWKS))),
        (PROTOCOL_ERROR,)),
    "headers-on-lower-stream-id": (_after_used_stream, (PROTOCOL_ERROR, STREAM_CLOSED)),
}

# hyper (h2 0.4.20) fails these: it sends GOAWAY PROTOCOL_ERROR for every frame that fails to
# load (a wrong length included: RFC 9113 requires FRAME_SIZE_ERROR), for an initial window of
# 2^31 (FLOW_CONTROL_ERROR required) and for every HPACK decoding failure (COMPRESSION_ERROR
# required).
@pytest.mark.parametrize("case", list(CONNECTION_ERRORS))
def test_connection_error(server, case):
    build, codes = CONNECTION_ERRORS[case]
    with raw(server) as c:
        c.wait_settings()
        c.send(build(c))
        c.expect_goaway(codes)


# hyper (h2 0.4.20) answers a PING sent as the first frame and keeps the connection open.
def test_first_frame_not_settings_is_protocol_error(server):
    with raw(server, handshake=False) as c:
        c.send(PREFACE + PingFrame(0, opaque_data=b"notsttng").serialize())
        while c.goaway is None:
            try:
                f = c.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({c.closed}) without GOAWAY: {c.seen}")
            # Answering the PING means it was taken as a valid frame: fail now, not at a timeout.
            assert not isinstance(f, PingFrame), f"PING before SETTINGS was answered: {c.seen}"
        c.expect_goaway((PROTOCOL_ERROR,))


def expect_http1_505(server: Server, sent: bytes) -> None:
    """The plain port is HTTP/1.1 first (h2c by prior knowledge only): bytes that are not the
    HTTP/2 preface are read as an HTTP/1.1 request, and a request line whose version is not
    HTTP/1.x is answered 505 with `connection: close`, then the connection is closed."""
    sock = server.connect()
    try:
        sock.sendall(sent)
        answer = bytearray()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        else:
            pytest.fail(f"connection still open {TIMEOUT_S}s after the answer: {bytes(answer)!r}")
    finally:
        sock.close()
    head, sep, body = bytes(answer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert sep and lines[0] == "HTTP/1.1 505 HTTP Version Not Supported", bytes(answer)
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert fields.get("connection") == "close", bytes(answer)
    assert fields.get("content-length") == str(len(body)), bytes(answer)  # nothing after the body


def test_invalid_preface_closes_connection(server):
    if not server.tls:
        # h2c: the plain port answers what is not the preface as HTTP/1.1 (see http2/3.5/2).
        expect_http1_505(server, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
        return
    with raw(server, handshake=False) as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
        # RFC 9113 section 3.4: MAY omit GOAWAY (the peer is not using HTTP/2); must not serve it.
        try:
            while True:
                f = c.read_frame()
                assert not isinstance(f, (HeadersFrame, DataFrame)), c.seen
                if c.goaway is not None:
                    assert c.goaway.error_code == PROTOCOL_ERROR, c.seen
        except Closed:
            pass


def test_goaway_last_stream_id_names_the_last_processed_stream(server, h1):
    with raw(server) as c:
        c.request(1, DISCOVERY)
        assert c.response(1).body == h1[DISCOVERY].body
        c.send(raw_frame(PING, 0, 1, b"12345678"))
        g = c.expect_goaway((PROTOCOL_ERROR,))
        assert g.last_stream_id == 1, c.seen


# --------------------------------------------------------------------------- 6. stream errors


def _req(*extra, drop=(), method="GET"):
    def build(c: RawConn):
        headers = [h for h in c.request_headers(DISCOVERY, method) if h[0] not in drop]
        return headers + list(extra)
    return build


STREAM_ERRORS = {
    "missing-path": _req(drop=(":path",)),
    "missing-method": _req(drop=(":method",)),
    "missing-scheme": _req(drop=(":scheme",)),
    "empty-path": lambda c: [(k, "" if k == ":path" else v) for k, v in c.request_headers(DISCOVERY)],
    "duplicate-path": _req((":path", DISCOVERY)),
    "uppercase-header-name": _req(("X-Upper", "1")),
    "connection-header": _req(("connection", "keep-alive")),
    "keep-alive-header": _req(("keep-alive", "timeout=5")),
    "transfer-encoding-header": _req(("transfer-encoding", "chunked")),
    "upgrade-header": _req(("upgrade", "h2c")),
    "te-gzip": _req(("te", "gzip")),
    "pseudo-header-after-regular": lambda c: (
        [h for h in c.request_headers(DISCOVERY) if h[0] != ":path"] + [("accept", "*/*"), (":path", DISCOVERY)]),
    "unknown-pseudo-header": _req((":foo", "bar")),
    "response-pseudo-header-in-request": _req((":status", "200")),
}

# Cases where a connection error (GOAWAY PROTOCOL_ERROR, then close) is accepted instead of the
# stream error. RFC 9113 section 5.4 lets an endpoint treat any stream error as a connection
# error, and hyper (h2 0.4.20) did so for an uppercase field name and an unknown pseudo-header.
# issuerd's engine resets the stream for every malformed request, so none is accepted here.
STREAM_ERROR_MAY_CLOSE: set[str] = set()


@pytest.mark.parametrize("case", list(STREAM_ERRORS))
def test_stream_error(server, h1, case):
    """A malformed request (RFC 9113 section 8.1.1) is a stream error PROTOCOL_ERROR: RST_STREAM
    on that stream, and the connection goes on serving (for STREAM_ERROR_MAY_CLOSE, a connection
    error PROTOCOL_ERROR is accepted too)."""
    with raw(server) as c:
        c.send(RawConn.headers_frame(1, STREAM_ERRORS[case](c)))
        if case in STREAM_ERROR_MAY_CLOSE:
            if not c.expect_stream_error_or_goaway(1, PROTOCOL_ERROR):
                assert 1 not in c.responses or c.responses[1].status is None, c.seen  # not served
                return
        else:
            c.expect_stream_error(1, PROTOCOL_ERROR)
        c.request(3, DISCOVERY)
        r = c.response(3)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.ping()


def test_headers_depending_on_itself_is_stream_error(server, h1):
    # RFC 9113 section 5.3.1: a stream cannot depend on itself; stream error PROTOCOL_ERROR.
    with raw(server) as c:
        block = header_block(c.request_headers(DISCOVERY))
        c.send(raw_frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, struct.pack(">IB", 1, 15) + block))
        c.expect_stream_error(1, PROTOCOL_ERROR)
        c.request(3, DISCOVERY)
        assert c.response(3).body == h1[DISCOVERY].body


# --------------------------------------------------------------------------- 7. control frames


def test_ping_is_acked_with_the_same_payload(server):
    with raw(server) as c:
        c.wait_settings()
        c.ping(b"\x00\x01\x02\x03\xfc\xfd\xfe\xff")  # asserts ACK flag and payload
        # A PING ACK from the client is not answered (RFC 9113 section 6.7): the next PING frame
        # from the server must be the ACK of the next PING (frames are processed in order).
        c.send(PingFrame(0, opaque_data=b"unasked!", flags=["ACK"]).serialize())
        c.ping(b"2nd ping")
        pings = [s for s in c.seen if s.startswith("PingFrame")]
        assert len(pings) == 2, c.seen


def test_settings_are_acked(server):
    with raw(server) as c:
        settings = c.wait_settings()
        if SETTINGS_MAX_FRAME_SIZE in settings:
            assert DEFAULT_MAX_FRAME_SIZE <= settings[SETTINGS_MAX_FRAME_SIZE] < 2**24
        c.send(SettingsFrame(0, settings={SETTINGS_HEADER_TABLE_SIZE: 4096}).serialize())
        c.send(SettingsFrame(0, settings={}).serialize())
        deadline = time.monotonic() + TIMEOUT_S
        while c.settings_acks < 3 and time.monotonic() < deadline:
            c.read_frame()
        assert c.settings_acks == 3, c.seen  # the first SETTINGS and the two later ones
        acks = [f for f in c.quiet(0.2) if isinstance(f, SettingsFrame) and "ACK" in f.flags]
        assert acks == [], c.seen  # exactly one ACK each


def test_padded_frames_are_accepted(server, h1):
    with raw(server) as c:
        block = header_block(c.request_headers(MISSING, "POST"))
        c.send(raw_frame(HEADERS, END_HEADERS | PADDED, 1, bytes([7]) + block + b"\0" * 7)
               + raw_frame(DATA, END_STREAM | PADDED, 1, bytes([3]) + b"body" + b"\0" * 3))
        r = c.response(1)
        assert (r.status, r.body) == (404, NOT_FOUND_BODY) and r.reset in (None, NO_ERROR), c.seen
        c.send(raw_frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 3,
                         bytes([0]) + header_block(c.request_headers(DISCOVERY))))  # zero padding
        assert c.response(3).body == h1[DISCOVERY].body, c.seen
        c.ping()


def test_unknown_frame_types_are_ignored(server, h1):
    with raw(server) as c:
        c.send(raw_frame(0xFA, 0xFF, 0, b"ignore me")
               + raw_frame(0xFB, 0x00, 1, b"")  # on an idle stream: does not open it
               + raw_frame(0xFC, 0x01, 7, b"x" * 100))
        c.request(1, DISCOVERY)
        r = c.response(1)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.ping()


def test_unknown_settings_are_ignored(server, h1):
    with raw(server, settings={0xFF00: 7, 0x00AB: 2**32 - 1}) as c:
        c.send(raw_frame(SETTINGS, 0, 0, settings_payload({0x0010: 1, 0xABCD: 0})))
        c.request(1, JWKS)
        assert c.response(1).body == h1[JWKS].body, c.seen
        deadline = time.monotonic() + TIMEOUT_S
        while c.settings_acks < 2 and time.monotonic() < deadline:
            c.read_frame()
        assert c.settings_acks == 2, c.seen
        c.ping()


def test_priority_frames_are_accepted(server, h1):
    with raw(server) as c:
        c.send(PriorityFrame(5, depends_on=0, stream_weight=200).serialize()  # idle stream
               + PriorityFrame(1, depends_on=5, stream_weight=10, exclusive=True).serialize()
               + raw_frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1,
                           struct.pack(">IB", 0x80000000 | 3, 100) + header_block(c.request_headers(DISCOVERY))))
        r = c.response(1)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.send(PriorityFrame(1, depends_on=0, stream_weight=16).serialize())  # closed stream
        c.request(7, JWKS)
        assert c.response(7).body == h1[JWKS].body, c.seen
        c.ping()


def test_rst_stream_on_a_finished_stream_is_ignored(server, h1):
    with raw(server) as c:
        c.request(1, DISCOVERY)
        assert c.response(1).body == h1[DISCOVERY].body
        c.send(RstStreamFrame(1, error_code=CANCEL).serialize())
        c.request(3, DISCOVERY)
        r = c.response(3)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.ping()
        assert c.goaway is None


def test_rst_stream_cancels_a_blocked_stream(server, h1):
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: 10}, auto_window=False) as c:
        c.request(1, JWKS)
        c.wait_headers(1)
        c.quiet(0.3)
        r = c.responses[1]
        assert r.status == 200 and sum(r.data_frames) <= 10 and not r.ended, c.seen
        c.send(RstStreamFrame(1, error_code=CANCEL).serialize())
        # This would open the stream's window were it still open (RFC 9113 section 6.9.2).
        c.send(SettingsFrame(0, settings={SETTINGS_INITIAL_WINDOW_SIZE: DEFAULT_WINDOW}).serialize())
        c.quiet()
        # No DATA beyond the 10-byte window for a stream the client reset.
        assert sum(r.data_frames) <= 10 and not r.ended, c.seen
        c.auto_window = True
        c.request(3, DISCOVERY)
        assert c.response(3).body == h1[DISCOVERY].body
        c.ping()


# --------------------------------------------------------------------------- 8. client GOAWAY


def test_client_goaway_closes_cleanly(server, h1):
    with raw(server) as c:
        c.request(1, DISCOVERY)
        assert c.response(1).body == h1[DISCOVERY].body
        c.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR).serialize())
        deadline = time.monotonic() + TIMEOUT_S
        with pytest.raises(Closed):
            while time.monotonic() < deadline:
                c.read_frame(max(0.05, deadline - time.monotonic()))
            pytest.fail(f"connection still open {TIMEOUT_S}s after the client's GOAWAY: {c.seen}")
        assert c.closed == "eof", f"closed by {c.closed}, expected a clean close; frames: {c.seen}"
        if c.goaway is not None:
            assert c.goaway.error_code == NO_ERROR, c.seen
        assert not [s for s in c.seen if s.startswith("RstStreamFrame")], c.seen


# --------------------------------------------------------------------------- 9. h2spec cases

# h2spec (summerwind/h2spec, 146 cases), run against `issuerd serve` as
# `h2spec -h 127.0.0.1 -p PORT -P /openid/v1/jwks [-t -k]`: every case that issuerd fails, or
# passes only because h2spec also takes a bare close for an answer or a race went its way, is
# replayed here with h2spec's frames, in h2spec's order, in one write, and issuerd's answer is
# asserted. The test id is h2spec's case id. So are the cases that pass through the paths the
# reset-stream accounting changes (frames on closed and reset streams, CONTINUATION out of
# place): h2spec passes them today, and these keep the exact answer.
#
# h2spec checks loosely: a stream-error or connection-error case passes on any close of the
# connection, whatever the GOAWAY said before it; the codes asserted here are exact.

H2SPEC_PATH = JWKS

# Where issuerd's answer stays different from the one RFC 9113 prefers (the one h2spec looks for):
# (h2spec case, the RFC's answer, issuerd's answer, why). The Rust side lists the same inputs,
# against hyper's answers, in H2_DELIBERATE_DIFFERENCES (src/server/http2/mod.rs).
H2SPEC_DIFFERENCES = [
    (
        "http2/3.5/2 (h2c only)",
        "connection error PROTOCOL_ERROR (section 3.4; the GOAWAY may be left out)",
        "HTTP/1.1 505 HTTP Version Not Supported with connection: close, then close",
        "the plain port is HTTP/1.1 first and takes h2c by prior knowledge only: bytes that are not "
        "the preface are an HTTP/1.1 request line, and one whose version is not HTTP/1.x is 505. "
        "Over TLS (ALPN h2) the answer is GOAWAY PROTOCOL_ERROR",
    ),
    (
        "http2/6.9.1/3",
        "RST_STREAM FLOW_CONTROL_ERROR (section 6.9.1: a stream window above 2^31-1)",
        "the response went out in full when the HEADERS came and the stream was reset NO_ERROR; "
        "the WINDOW_UPDATEs, on a closed stream, are ignored",
        "a request is answered as soon as its header block ends (section 8.1 allows it), so the "
        "window overflowed is a closed stream's. A response still held by flow control gets "
        "RST_STREAM FLOW_CONTROL_ERROR (test_stream_window_overflow_is_stream_error)",
    ),
    (
        "http2/8.1.2.6/1, http2/8.1.2.6/2",
        "stream error PROTOCOL_ERROR (section 8.1.1: content-length is not the sum of the DATA payloads)",
        "answered (405: POST) when the HEADERS came, then RST_STREAM NO_ERROR; the DATA that "
        "complete the body (END_STREAM within the allowance of a reset stream) are ignored",
        "the body is never read, so its length is never compared with content-length",
    ),
    (
        "http2/8.1/1, http2/8.1.2.1/3",
        "stream error PROTOCOL_ERROR (section 8.1: trailers without END_STREAM, or with a "
        "pseudo-header, make the request malformed)",
        "answered (405) when the HEADERS came, RST_STREAM NO_ERROR, then GOAWAY PROTOCOL_ERROR "
        "when the trailers come without END_STREAM",
        "the stream was answered and reset before the trailers came, so the error can only be "
        "a connection error (section 5.4.1 allows one for any stream error)",
    ),
    (
        "http2/5.1/8, http2/5.1/9",
        "stream error STREAM_CLOSED (h2spec; section 5.1 allows a connection error STREAM_CLOSED)",
        "answered, RST_STREAM NO_ERROR, then GOAWAY STREAM_CLOSED for the DATA or HEADERS the "
        "client sends after its own RST_STREAM",
        "issuerd ignores frames on a stream it reset only until the client closes it (END_STREAM "
        "or RST_STREAM, section 5.1 lets the ignoring be limited): after the client's own "
        "RST_STREAM nothing can still be in flight, and the frame is one on a closed stream",
    ),
    (
        "http2/5.1.1/2",
        "connection error PROTOCOL_ERROR (section 5.1.1: a stream id below one already opened)",
        "GOAWAY STREAM_CLOSED",
        "only the highest stream id is kept: every lower one is closed (section 5.1.1 closes the "
        "idle streams a higher id skips), and HEADERS on a closed stream is a connection error "
        "STREAM_CLOSED (section 5.1)",
    ),
    (
        "http2/7/1",
        "a PING after the client's GOAWAY is answered (h2spec takes a close too)",
        "once the client has sent GOAWAY and nothing is owed, the connection is closed cleanly "
        "(no GOAWAY of its own); a PING read in the same step as the GOAWAY is answered first",
        "a client that said GOAWAY opens no more streams, so the connection has nothing left to do",
    ),
]

H2SPEC_CASES = {}  # h2spec case id -> function(server, h1)


def h2spec_case(case_id: str):
    def register(fn):
        H2SPEC_CASES[case_id] = fn
        return fn
    return register


def spec_headers(c: RawConn, sid: int, flags: int, method: str = "GET", extra=(), headers=None) -> bytes:
    """HEADERS as h2spec's CommonHeaders builds them (method, scheme, authority, the -P path)."""
    block = header_block(headers if headers is not None else c.request_headers(H2SPEC_PATH, method, extra))
    return raw_frame(HEADERS, flags, sid, block)


def spec_conn(server: Server) -> RawConn:
    """A connection past the handshake, as h2spec's conn.Handshake leaves it."""
    c = RawConn(server)
    c.wait_settings()
    return c


def expect_served(c: RawConn, h1, sid: int, method: str = "GET") -> Response:
    r = c.response(sid)
    if method == "GET":
        assert (r.status, r.body) == (200, h1[H2SPEC_PATH].body), c.seen
    else:
        assert r.status == 405 and r.header("allow") == "GET, HEAD", c.seen
    return r


def expect_reset_no_error(c: RawConn, sid: int) -> None:
    """Frames until the server resets `sid`: NO_ERROR, the request answered before its end."""
    while not (sid in c.responses and c.responses[sid].resets):
        if c.goaway is not None:
            pytest.fail(f"GOAWAY {err(c.goaway.error_code)} before RST_STREAM on {sid}: {c.seen}")
        try:
            c.read_frame()
        except Closed:
            pytest.fail(f"connection closed ({c.closed}) before RST_STREAM on {sid}: {c.seen}")
    assert c.responses[sid].resets[0] == NO_ERROR, c.seen


def expect_still_usable(c: RawConn, h1, next_sid: int) -> None:
    """Nothing more for what was sent (no RST_STREAM, no GOAWAY); PING answered; a new request served."""
    late = c.quiet()
    assert not [f for f in late if isinstance(f, (RstStreamFrame, GoAwayFrame))], c.seen
    c.ping()
    c.request(next_sid, DISCOVERY)
    r = c.response(next_sid)
    assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen


def expect_connection_error(c: RawConn, code: int, last_stream_id: int) -> None:
    g = c.expect_goaway((code,))
    assert g.last_stream_id == last_stream_id, c.seen


@h2spec_case("http2/3.5/2")
def _invalid_preface(server, h1):
    sent = b"INVALID CONNECTION PREFACE\r\n\r\n"
    if not server.tls:
        expect_http1_505(server, sent)  # H2SPEC_DIFFERENCES
        return
    with raw(server, handshake=False) as c:
        c.send(sent)
        expect_connection_error(c, PROTOCOL_ERROR, 0)
        assert not [s for s in c.seen if s.startswith(("HeadersFrame", "DataFrame"))], c.seen


def after_both_resets(server, h1, late) -> None:
    # HEADERS without END_STREAM is answered at once and reset NO_ERROR; the client's own
    # RST_STREAM then closes the stream for good, and a frame after it is STREAM_CLOSED.
    with spec_conn(server) as c:
        c.send(spec_headers(c, 1, END_HEADERS) + RstStreamFrame(1, error_code=CANCEL).serialize() + late(c))
        expect_served(c, h1, 1)
        expect_reset_no_error(c, 1)
        expect_connection_error(c, STREAM_CLOSED, 1)  # H2SPEC_DIFFERENCES


@h2spec_case("http2/5.1/8")
def _data_after_rst_stream(server, h1):
    after_both_resets(server, h1, lambda c: DataFrame(1, data=b"test", flags=["END_STREAM"]).serialize())


@h2spec_case("http2/5.1/9")
def _headers_after_rst_stream(server, h1):
    after_both_resets(server, h1, lambda c: spec_headers(c, 1, END_HEADERS | END_STREAM))


@h2spec_case("http2/5.1/10")
def _continuation_after_rst_stream(server, h1):
    # A CONTINUATION that follows no open header block is PROTOCOL_ERROR (section 6.10), on a
    # reset stream too: it is not one of the frames a reset stream may still take.
    with spec_conn(server) as c:
        c.send(spec_headers(c, 1, END_HEADERS) + RstStreamFrame(1, error_code=CANCEL).serialize()
               + raw_frame(CONTINUATION, END_HEADERS, 1, header_block([("x-dummy0", "dummy")])))
        expect_served(c, h1, 1)
        expect_reset_no_error(c, 1)
        expect_connection_error(c, PROTOCOL_ERROR, 1)


def on_closed_stream(server, h1, first, late, code, *, wait: bool, method: str = "GET") -> None:
    """`first` (a request that ends the stream), then `late` on the same stream, at once or
    once the response is in (`wait`): a connection error `code` after the response."""
    with spec_conn(server) as c:
        if wait:
            c.send(first(c))
            expect_served(c, h1, 1, method)
            c.send(late(c))
        else:
            c.send(first(c) + late(c))
            expect_served(c, h1, 1, method)
        expect_connection_error(c, code, 1)
        assert c.responses[1].resets == [], c.seen


def _get_ended(c):
    return spec_headers(c, 1, END_HEADERS | END_STREAM)


def _data_ended(c):
    return DataFrame(1, data=b"test", flags=["END_STREAM"]).serialize()


def _continuation_ended(c):
    return raw_frame(CONTINUATION, END_HEADERS, 1, header_block([("x-dummy0", "dummy")]))


@h2spec_case("http2/5.1/5")
def _half_closed_data(server, h1):
    on_closed_stream(server, h1, _get_ended, _data_ended, STREAM_CLOSED, wait=False)


@h2spec_case("http2/5.1/6")
def _half_closed_headers(server, h1):
    on_closed_stream(server, h1, _get_ended, _get_ended, STREAM_CLOSED, wait=False)


@h2spec_case("http2/5.1/7")
def _half_closed_continuation(server, h1):
    on_closed_stream(server, h1, _get_ended, _continuation_ended, PROTOCOL_ERROR, wait=False)


@h2spec_case("http2/5.1/11")
def _closed_data(server, h1):
    on_closed_stream(server, h1, _get_ended, _data_ended, STREAM_CLOSED, wait=True)


@h2spec_case("http2/5.1/12")
def _closed_headers(server, h1):
    on_closed_stream(server, h1, _get_ended, _get_ended, STREAM_CLOSED, wait=True)


@h2spec_case("http2/5.1/13")
def _closed_continuation(server, h1):
    on_closed_stream(server, h1, _get_ended, _continuation_ended, PROTOCOL_ERROR, wait=True)


@h2spec_case("http2/6.1/2")
def _data_on_half_closed(server, h1):
    on_closed_stream(server, h1, lambda c: spec_headers(c, 1, END_HEADERS | END_STREAM, "POST"), _data_ended,
                     STREAM_CLOSED, wait=False, method="POST")


@h2spec_case("http2/6.10/4")
def _continuation_after_end_headers(server, h1):
    on_closed_stream(server, h1, _get_ended, _continuation_ended, PROTOCOL_ERROR, wait=False)


@h2spec_case("http2/6.10/5")
def _continuation_after_ended_continuation(server, h1):
    def first(c):
        block = header_block(c.request_headers(H2SPEC_PATH))
        return (raw_frame(HEADERS, END_STREAM, 1, block[:5])
                + raw_frame(CONTINUATION, END_HEADERS, 1, block[5:]))
    on_closed_stream(server, h1, first, lambda c: raw_frame(CONTINUATION, END_HEADERS, 1, b"\x82"),
                     PROTOCOL_ERROR, wait=False)


@h2spec_case("http2/5.1.1/2")
def _lower_stream_id(server, h1):
    with spec_conn(server) as c:
        c.send(spec_headers(c, 5, END_HEADERS | END_STREAM) + spec_headers(c, 3, END_HEADERS | END_STREAM))
        expect_served(c, h1, 5)
        expect_connection_error(c, STREAM_CLOSED, 5)  # H2SPEC_DIFFERENCES: the RFC says PROTOCOL_ERROR
        assert 3 not in c.responses, c.seen


@h2spec_case("http2/6.9/2")
def _window_update_0_on_a_reset_stream(server, h1):
    # The stream was answered and reset NO_ERROR before the WINDOW_UPDATE came; an increment of
    # 0 is still a stream error PROTOCOL_ERROR (section 6.9), judged before the stream's state.
    with spec_conn(server) as c:
        c.send(spec_headers(c, 1, END_HEADERS) + raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
        expect_served(c, h1, 1)
        expect_reset_no_error(c, 1)
        while len(c.responses[1].resets) < 2 and c.goaway is None:
            try:
                c.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({c.closed}): {c.seen}")
        if c.goaway is not None:  # a connection error is allowed too (section 5.4)
            expect_connection_error(c, PROTOCOL_ERROR, 1)
            return
        assert c.responses[1].resets == [NO_ERROR, PROTOCOL_ERROR], c.seen
        expect_still_usable(c, h1, 3)


@h2spec_case("http2/6.9.1/3")
def _stream_window_overflow_after_the_response(server, h1):
    with spec_conn(server) as c:
        c.send(spec_headers(c, 1, END_HEADERS)
               + WindowUpdateFrame(1, window_increment=MAX_WINDOW).serialize()
               + WindowUpdateFrame(1, window_increment=MAX_WINDOW).serialize())
        expect_served(c, h1, 1)
        expect_reset_no_error(c, 1)  # H2SPEC_DIFFERENCES: not FLOW_CONTROL_ERROR
        assert c.responses[1].resets == [NO_ERROR], c.seen
        expect_still_usable(c, h1, 3)


def trailers_not_ending(server, h1, trailers) -> None:
    with spec_conn(server) as c:
        c.send(spec_headers(c, 1, END_HEADERS, "POST")
               + DataFrame(1, data=b"test").serialize()
               + raw_frame(HEADERS, END_HEADERS, 1, header_block(trailers)))
        expect_served(c, h1, 1, "POST")
        expect_reset_no_error(c, 1)
        expect_connection_error(c, PROTOCOL_ERROR, 1)  # H2SPEC_DIFFERENCES: a connection error


@h2spec_case("http2/8.1/1")
def _second_headers_without_end_stream(server, h1):
    trailers_not_ending(server, h1, [("x-test", "ok")])


@h2spec_case("http2/8.1.2.1/3")
def _pseudo_header_in_trailers(server, h1):
    trailers_not_ending(server, h1, [(":method", "POST")])


def content_length_mismatch(server, h1, bodies) -> None:
    with spec_conn(server) as c:
        frames = [DataFrame(1, data=b, flags=["END_STREAM"] if i == len(bodies) - 1 else []).serialize()
                  for i, b in enumerate(bodies)]
        c.send(spec_headers(c, 1, END_HEADERS, "POST", [("content-length", "1")]) + b"".join(frames))
        expect_served(c, h1, 1, "POST")
        expect_reset_no_error(c, 1)  # H2SPEC_DIFFERENCES: not PROTOCOL_ERROR
        assert c.responses[1].resets == [NO_ERROR], c.seen
        expect_still_usable(c, h1, 3)


@h2spec_case("http2/8.1.2.6/1")
def _content_length_above_the_data(server, h1):
    content_length_mismatch(server, h1, [b"test"])


@h2spec_case("http2/8.1.2.6/2")
def _content_length_above_several_data(server, h1):
    content_length_mismatch(server, h1, [b"test", b"test"])


@h2spec_case("http2/7/1")
def _goaway_with_an_unknown_error_code(server, h1):
    unknown = GoAwayFrame(0, last_stream_id=0, error_code=0xFF).serialize()
    # GOAWAY alone (h2spec sends its PING in a later write): closed cleanly, nothing is owed.
    with spec_conn(server) as c:
        c.send(unknown)
        deadline = time.monotonic() + TIMEOUT_S
        with pytest.raises(Closed):
            while time.monotonic() < deadline:
                c.read_frame(max(0.05, deadline - time.monotonic()))
            pytest.fail(f"connection still open {TIMEOUT_S}s after the client's GOAWAY: {c.seen}")
        assert c.closed == "eof", f"closed by {c.closed}, expected a clean close: {c.seen}"
        assert c.goaway is None or c.goaway.error_code == NO_ERROR, c.seen
    # GOAWAY and PING read together: the PING is answered, then the connection closes.
    with spec_conn(server) as c:
        c.send(unknown + PingFrame(0, opaque_data=b"h2spec!!").serialize())
        acked = False
        try:
            while True:
                f = c.read_frame()
                if isinstance(f, PingFrame) and "ACK" in f.flags:
                    assert f.opaque_data == b"h2spec!!", c.seen
                    acked = True
        except Closed:
            pass
        assert acked and c.closed == "eof", c.seen
        assert c.goaway is None or c.goaway.error_code == NO_ERROR, c.seen


@pytest.mark.parametrize("case", list(H2SPEC_CASES))
def test_h2spec_case(server, h1, case):
    """h2spec's case `case`, frame for frame (see H2SPEC_DIFFERENCES where issuerd's answer is
    not the RFC's preferred one)."""
    H2SPEC_CASES[case](server, h1)


def test_h2spec_differences_name_replayed_cases():
    for cases, rfc, ours, why in H2SPEC_DIFFERENCES:
        assert rfc and ours and why
        for case in cases.replace(" (h2c only)", "").split(", "):
            assert case in H2SPEC_CASES, case


# --------------------------------------------------------------------------- 10. floods and header limits

# These need the engine of main c1c2cee ("every frame costs budget or closes the connection ...
# header blocks capped at 16 KiB with a deadline"); against 9358560 and earlier they fail.

RESET_FRAME_ALLOWANCE = 16  # frames a reset stream may still take (connection.rs RESET_FRAME_ALLOWANCE)
MAX_CONTINUATIONS = 16  # CONTINUATION frames per header block (connection.rs MAX_CONTINUATIONS)
MAX_HEADER_BLOCK = 16 * 1024  # bytes of an unfinished header block held (connection.rs MAX_HEADER_BLOCK)
FLOOD_FRAMES = 3000  # more than the control-frame budget (BUDGET_MAX 1000) can take in a burst
HEADER_TIMEOUT_S = 1.0


def frames_until_goaway(c: RawConn, frame_for, limit: int) -> int:
    """Sends frame_for(1), frame_for(2), ... each followed by a PING that must be answered, until
    a GOAWAY comes; returns how many frames were sent (fails after `limit` without one)."""
    for i in range(1, limit + 1):
        marker = struct.pack(">Q", i)
        c._answer(frame_for(i) + PingFrame(0, opaque_data=marker).serialize())
        while True:
            try:
                f = c.read_frame()
            except Closed:
                pytest.fail(f"connection closed ({c.closed}) without GOAWAY after {i} frames: {c.seen}")
            if c.goaway is not None:
                return i
            if isinstance(f, PingFrame) and "ACK" in f.flags:
                assert f.opaque_data == marker, c.seen
                break
    pytest.fail(f"no GOAWAY after {limit} frames: {c.seen}")


def reset_stream_1(c: RawConn, h1, method: str = "GET") -> None:
    """Stream 1 opened without END_STREAM: answered at once and reset NO_ERROR."""
    c.send(spec_headers(c, 1, END_HEADERS, method))
    expect_served(c, h1, 1, method)
    expect_reset_no_error(c, 1)


@pytest.mark.parametrize("end_stream", [True, False], ids=["with-end-stream", "without-end-stream"])
def test_repeated_headers_on_a_reset_stream_end_the_connection(server, h1, end_stream):
    # Trailers on a reset stream are ignored once; HEADERS that do not end it (malformed
    # trailers, section 8.1) are PROTOCOL_ERROR at once; HEADERS after the one that ended it are
    # on a closed stream (STREAM_CLOSED). Either way within the allowance, never ignored forever.
    with spec_conn(server) as c:
        reset_stream_1(c, h1)
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        n = frames_until_goaway(c, lambda i: raw_frame(HEADERS, flags, 1, header_block([("x-trailer", str(i))])),
                                RESET_FRAME_ALLOWANCE + 1)
        if end_stream:
            assert n == 2, c.seen
            expect_connection_error(c, STREAM_CLOSED, 1)
        else:
            assert n == 1, c.seen
            expect_connection_error(c, PROTOCOL_ERROR, 1)


@pytest.mark.parametrize("payload", [b"x", b""], ids=["one-byte", "empty"])
def test_data_on_a_reset_stream_past_the_allowance_is_protocol_error(server, h1, payload):
    # A body's DATA in flight when the stream was reset is ignored, up to RESET_FRAME_ALLOWANCE
    # frames (an empty one spends the control-frame budget too); one more is PROTOCOL_ERROR.
    with spec_conn(server) as c:
        reset_stream_1(c, h1, "POST")
        n = frames_until_goaway(c, lambda i: DataFrame(1, data=payload).serialize(), RESET_FRAME_ALLOWANCE + 1)
        assert n == RESET_FRAME_ALLOWANCE + 1, c.seen
        expect_connection_error(c, PROTOCOL_ERROR, 1)


def test_a_body_in_flight_on_a_reset_stream_is_ignored(server, h1):
    # What an honest client has in flight when the reset comes: a 64 KiB body (the default
    # stream window) in full-size DATA frames, then trailers that end it.
    with spec_conn(server) as c:
        reset_stream_1(c, h1, "POST")
        body = [DataFrame(1, data=b"b" * DEFAULT_MAX_FRAME_SIZE).serialize() for _ in range(3)]
        body.append(DataFrame(1, data=b"b" * (DEFAULT_WINDOW - 3 * DEFAULT_MAX_FRAME_SIZE)).serialize())
        c.send(b"".join(body) + raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, header_block([("x-trailer", "1")])))
        expect_still_usable(c, h1, 3)


@pytest.mark.parametrize("padded", [False, True], ids=["empty", "padding-only"])
def test_empty_data_flood_on_an_open_stream_is_calmed(server, padded):
    # The response is held by a zero window, so stream 1 stays open for its request body: DATA
    # that carries nothing (padding only, too) costs the control-frame budget.
    with raw(server, settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False) as c:
        c.request(1, JWKS, end_stream=False)
        c.wait_headers(1)
        empty = raw_frame(DATA, PADDED, 1, b"\x00") if padded else raw_frame(DATA, 0, 1, b"")
        c._answer(empty * FLOOD_FRAMES)
        c.expect_goaway((ENHANCE_YOUR_CALM, PROTOCOL_ERROR))


@pytest.mark.parametrize("fragment", [b"", b"\x82"], ids=["empty", "one-byte"])
def test_continuation_flood_is_calmed(server, fragment):
    # A header block in more than MAX_CONTINUATIONS pieces, or empty ones (the CVE-2024-27316 class).
    with spec_conn(server) as c:
        head = raw_frame(HEADERS, END_STREAM, 1, header_block(c.request_headers(DISCOVERY)))
        c._answer(head + raw_frame(CONTINUATION, 0, 1, fragment) * (4 * MAX_CONTINUATIONS))
        c.expect_goaway((ENHANCE_YOUR_CALM, PROTOCOL_ERROR))
        assert 1 not in c.responses, c.seen


def test_header_block_in_eight_continuations_is_served(server, h1):
    # nghttp2 takes a block in 8 CONTINUATION frames; so does issuerd (up to MAX_CONTINUATIONS).
    with spec_conn(server) as c:
        block = header_block(c.request_headers(DISCOVERY, extra=[("x-padding", "p" * 90)]))
        size = -(-len(block) // 9)
        pieces = [block[i:i + size] for i in range(0, len(block), size)]
        assert len(pieces) == 9
        c.send(raw_frame(HEADERS, END_STREAM, 1, pieces[0])
               + b"".join(raw_frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, 1, p)
                          for i, p in enumerate(pieces) if i > 0))
        r = c.response(1)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.ping()


def filler_block(c: RawConn, size: int) -> bytes:
    """A request's header block of `size` bytes or a few more (an x-filler field)."""
    base = c.request_headers(DISCOVERY)
    filler = max(0, size - len(header_block(base)) - 16)
    while len(block := header_block(base + [("x-filler", "a" * filler)])) < size:
        filler += 1
    assert size <= len(block) <= size + 2, len(block)
    return block


def test_header_block_over_16_kib_is_431_then_goaway(server):
    with spec_conn(server) as c:
        block = filler_block(c, MAX_HEADER_BLOCK + 1)
        c.send(raw_frame(HEADERS, END_STREAM, 1, block[:10000])
               + raw_frame(CONTINUATION, END_HEADERS, 1, block[10000:]))
        r = c.response(1)
        assert r.status == 431, c.seen
        expect_connection_error(c, NO_ERROR, 1)


def test_header_block_of_12_kib_in_continuations_is_served(server, h1):
    with spec_conn(server) as c:
        block = filler_block(c, 12 * 1024)
        c.send(raw_frame(HEADERS, END_STREAM, 1, block[:8000])
               + raw_frame(CONTINUATION, END_HEADERS, 1, block[8000:]))
        r = c.response(1)
        assert (r.status, r.body) == (200, h1[DISCOVERY].body), c.seen
        c.ping()


@pytest.fixture(scope="module", params=["h2c", "tls"])
def timeout_server(request, key_files, tmp_path_factory):
    """`issuerd serve` with --header-timeout 1s (and a keep-alive timeout far beyond it)."""
    found = start_issuerd(request.param, key_files, tmp_path_factory.mktemp(f"h2-timeout-{request.param}"),
                          ("--header-timeout", f"{HEADER_TIMEOUT_S:g}s", "--keep-alive-timeout", "60s"))
    yield found
    stop_issuerd(found)


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickling-continuations"])
def test_unfinished_header_block_is_closed_at_the_header_timeout(timeout_server, trickle):
    # The header timeout runs from the block's first fragment: more fragments do not extend it.
    with spec_conn(timeout_server) as c:
        block = header_block(c.request_headers(DISCOVERY))
        started = time.monotonic()
        c.send(raw_frame(HEADERS, END_STREAM, 1, block[:3]))
        deadline = started + HEADER_TIMEOUT_S + 3
        sent = 0
        while c.goaway is None and time.monotonic() < deadline:
            if trickle and sent < MAX_CONTINUATIONS - 1:
                c._answer(raw_frame(CONTINUATION, 0, 1, block[3 + sent:4 + sent] or b"\x82"))
                sent += 1
            try:
                c.read_frame(0.15, quiet_ok=True)
            except Closed:
                pytest.fail(f"connection closed ({c.closed}) without GOAWAY: {c.seen}")
        elapsed = time.monotonic() - started
        assert c.goaway is not None, f"no GOAWAY {elapsed:.1f}s after an unfinished header block: {c.seen}"
        assert HEADER_TIMEOUT_S * 0.8 <= elapsed <= HEADER_TIMEOUT_S + 3, elapsed
        expect_connection_error(c, NO_ERROR, 0)
        assert 1 not in c.responses, c.seen


def test_header_timeout_leaves_an_idle_connection_open(timeout_server):
    with spec_conn(timeout_server) as c:
        c.request(1, DISCOVERY)
        assert c.response(1).status == 200
        time.sleep(HEADER_TIMEOUT_S * 1.5)
        c.ping()
        c.request(3, DISCOVERY)
        assert c.response(3).status == 200
