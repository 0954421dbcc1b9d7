"""HTTPS interop: third-party OIDC/JWT verifiers accept `issuerd serve --tls-cert/--tls-key`.

The test makes its own CA and a leaf certificate for localhost/127.0.0.1 (with `cryptography`),
starts `issuerd serve --issuer https://localhost:PORT --allow-issuer-port --tls-cert --tls-key` and
mints tokens with `issuerd mint`. Each verifier then does what a relying party does, over real
HTTPS, trusting ONLY the test CA (TLS verification is never turned off):

- PyJWT: discovery with requests, `PyJWKClient(jwks_uri, ssl_context=...)`, `jwt.decode`;
- joserfc: discovery and JWKS with requests, `jwt.decode` + `JWTClaimsRegistry`;
- Node openid-client: `discovery()`, then jose `createRemoteJWKSet` + `jwtVerify`
  (node/verify.mjs; the CA through NODE_EXTRA_CA_CERTS);
- Go go-oidc v2: `oidc.NewProvider` + `provider.Verifier(...).Verify` with an http.Client trusting
  the CA (go-oidc/main.go, built offline against Debian's /usr/share/gocode).

Each must refuse a wrong audience, and a client that does not trust the test CA must fail.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import errors as joserfc_errors
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet as JoseRfcKeySet

from test_interop import ISSUERD_BIN, KEYS_DIR, REPO_ROOT, free_port, kid_of

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
GO_OIDC_DIR = HERE / "go-oidc"
GOPATH = Path("/usr/share/gocode")
GO_OIDC_PKG = GOPATH / "src" / "github.com" / "coreos" / "go-oidc"

AUDIENCE = "sts.amazonaws.com"
WRONG_AUDIENCE = "vault"
NAMESPACE, SA_NAME = "interop", "https-verifier"
SUBJECT = f"system:serviceaccount:{NAMESPACE}:{SA_NAME}"
# alg -> the fixture key `issuerd serve` publishes and `issuerd mint` signs with
SIGNING_KEYS = {"RS256": "rsa2048.pkcs8.pem", "ES256": "ec256.pkcs8.pem"}
ALGS = sorted(SIGNING_KEYS)

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 5.0
CLIENT_TIMEOUT_S = 30.0
START_ATTEMPTS = 3


# --------------------------------------------------------------------------- test PKI


@dataclass
class Pki:
    ca: Path  # the CA certificate every client trusts
    other_ca: Path  # a CA that did not sign the server's certificate
    cert: Path  # leaf for localhost + 127.0.0.1
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("https-pki")
    ca_key, ca_cert = _make_ca("issuerd interop test CA")
    _, other_cert = _make_ca("issuerd interop unrelated CA")
    leaf_key, leaf_cert = _make_leaf(ca_key, ca_cert)
    pki = Pki(ca=d / "ca.crt", other_ca=d / "other-ca.crt", cert=d / "tls.crt", key=d / "tls.key")
    pki.ca.write_bytes(_pem(ca_cert))
    pki.other_ca.write_bytes(_pem(other_cert))
    pki.cert.write_bytes(_pem(leaf_cert))  # leaf only: the clients must build the chain to the CA
    pki.key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pki.key.chmod(0o600)
    return pki


# --------------------------------------------------------------------------- issuerd over HTTPS


@dataclass
class HttpsIssuerd:
    proc: subprocess.Popen
    issuer: str
    log_path: Path

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"


def _wait_ready(proc: subprocess.Popen, issuer: str, ca: Path) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(requests.RequestException):
            r = requests.get(f"{issuer}/readyz", timeout=1, verify=str(ca))
            if r.status_code == 200 and proc.poll() is None:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server(pki, tmp_path_factory):
    """`issuerd serve` over HTTPS on a free port; SIGTERM at the end must give exit 0."""
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it (cargo build) or set ISSUERD_BIN")
    logs = tmp_path_factory.mktemp("https-logs")
    found, failures = None, []
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        issuer = f"https://localhost:{port}"
        cmd = [
            str(ISSUERD_BIN), "serve",
            "--listen", f"127.0.0.1:{port}",
            "--issuer", issuer,
            "--allow-issuer-port",
            "--tls-cert", str(pki.cert),
            "--tls-key", str(pki.key),
        ]
        for name in SIGNING_KEYS.values():
            cmd += ["--key-file", str(KEYS_DIR / name)]
        log_path = logs / f"issuerd-{port}-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        candidate = HttpsIssuerd(proc=proc, issuer=issuer, log_path=log_path)
        if _wait_ready(proc, issuer, pki.ca):
            found = candidate
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        failures.append(f"attempt {attempt}: {' '.join(cmd)}\nexit={proc.returncode}\n{candidate.log()}")
    if found is None:
        pytest.fail("issuerd (https) did not become ready:\n" + "\n---\n".join(failures))

    yield found

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


@pytest.fixture(scope="module")
def tokens(server, tmp_path_factory) -> dict[str, Path]:
    """alg -> file holding a token minted by `issuerd mint` for the https issuer."""
    d = tmp_path_factory.mktemp("https-tokens")
    out = {}
    for alg, key in SIGNING_KEYS.items():
        path = d / f"{alg}.jwt"
        cmd = [
            str(ISSUERD_BIN), "mint",
            "--key", str(KEYS_DIR / key),
            "--issuer", server.issuer,
            "--subject", f"{NAMESPACE}/{SA_NAME}",
            "--audience", AUDIENCE,
            "--out", str(path),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
        assert run.returncode == 0, f"{' '.join(cmd)}: exit {run.returncode}\n{run.stderr}"
        header = jwt.get_unverified_header(path.read_text().strip())
        assert header["alg"] == alg, header
        assert header["kid"] == kid_of(load_private_key_file(key).public_key()), header
        out[alg] = path
    return out


def load_private_key_file(name: str):
    return serialization.load_pem_private_key((KEYS_DIR / name).read_bytes(), password=None)


def token_of(tokens, alg: str) -> str:
    return tokens[alg].read_text().strip()


def check_claims(claims: dict, issuer: str) -> None:
    assert claims["iss"] == issuer
    assert claims["sub"] == SUBJECT
    aud = claims["aud"]
    assert (aud if isinstance(aud, list) else [aud]) == [AUDIENCE]


def ssl_context_trusting(ca: Path) -> ssl.SSLContext:
    """A verifying client context whose only trust anchor is `ca`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.load_verify_locations(cafile=str(ca))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


# --------------------------------------------------------------------------- Python: PyJWT, joserfc


@pytest.fixture(scope="module")
def discovery(server, pki) -> dict:
    r = requests.get(server.discovery_url, timeout=HTTP_TIMEOUT_S, verify=str(pki.ca))
    assert r.status_code == 200, (r.status_code, r.text)
    doc = r.json()
    assert doc["issuer"] == server.issuer
    assert doc["jwks_uri"] == server.issuer + "/openid/v1/jwks"
    assert doc["id_token_signing_alg_values_supported"] == ALGS
    return doc


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_over_https(alg, server, pki, discovery, tokens):
    token = token_of(tokens, alg)
    client = jwt.PyJWKClient(
        discovery["jwks_uri"], timeout=HTTP_TIMEOUT_S, ssl_context=ssl_context_trusting(pki.ca)
    )
    key = client.get_signing_key_from_jwt(token)
    assert key.algorithm_name == alg
    claims = jwt.decode(
        token,
        key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=AUDIENCE,
        issuer=discovery["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "sub", "aud"]},
    )
    check_claims(claims, server.issuer)
    with pytest.raises(jwt.exceptions.InvalidAudienceError):
        jwt.decode(token, key, algorithms=[alg], audience=WRONG_AUDIENCE, issuer=discovery["issuer"])


@pytest.mark.parametrize("alg", ALGS)
def test_joserfc_over_https(alg, server, pki, discovery, tokens):
    r = requests.get(discovery["jwks_uri"], timeout=HTTP_TIMEOUT_S, verify=str(pki.ca))
    assert r.status_code == 200, (r.status_code, r.text)
    keys = JoseRfcKeySet.import_key_set(r.json())
    token = joserfc_jwt.decode(
        token_of(tokens, alg), keys, algorithms=discovery["id_token_signing_alg_values_supported"]
    )
    assert token.header["alg"] == alg
    joserfc_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True, "value": SUBJECT},
        exp={"essential": True},
    ).validate(token.claims)
    check_claims(token.claims, server.issuer)
    with pytest.raises(joserfc_errors.InvalidClaimError):
        joserfc_jwt.JWTClaimsRegistry(aud={"essential": True, "value": WRONG_AUDIENCE}).validate(token.claims)


def test_python_clients_refuse_an_untrusted_server(server, pki, discovery, tokens):
    # requests with its default trust store (certifi) and with an unrelated CA.
    for verify in (True, str(pki.other_ca)):
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.discovery_url, timeout=HTTP_TIMEOUT_S, verify=verify)
    # PyJWKClient with the system's default context and with a context trusting another CA.
    token = token_of(tokens, "ES256")
    for ctx in (ssl.create_default_context(), ssl_context_trusting(pki.other_ca)):
        client = jwt.PyJWKClient(discovery["jwks_uri"], timeout=HTTP_TIMEOUT_S, ssl_context=ctx)
        with pytest.raises(jwt.exceptions.PyJWKClientConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get_signing_key_from_jwt(token)


# --------------------------------------------------------------------------- Node: openid-client + jose


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node not found: install nodejs and npm (apt-get install nodejs npm)")
    for package in ("openid-client", "jose"):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"{package} not installed in {NODE_DIR}: run `npm ci` there (scripts/test.sh does)")
    return path


def run_node(node: str, server, token: Path, *, audience: str = AUDIENCE, ca: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    return subprocess.run(
        [node, str(NODE_DIR / "verify.mjs"), server.issuer, audience, str(token)],
        cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
    )


@pytest.mark.parametrize("alg", ALGS)
def test_openid_client_over_https(alg, node, server, pki, tokens):
    run = run_node(node, server, tokens[alg], ca=pki.ca)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stderr}"
    out = json.loads(run.stdout)
    assert out["metadata"]["issuer"] == server.issuer
    assert out["metadata"]["jwks_uri"] == server.issuer + "/openid/v1/jwks"
    assert out["header"]["alg"] == alg
    assert out["header"]["kid"] == kid_of(load_private_key_file(SIGNING_KEYS[alg]).public_key())
    check_claims(out["payload"], server.issuer)


def test_openid_client_refuses_wrong_audience(node, server, pki, tokens):
    run = run_node(node, server, tokens["ES256"], audience=WRONG_AUDIENCE, ca=pki.ca)
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert 'unexpected "aud" claim value' in run.stderr, run.stderr


@pytest.mark.parametrize("ca", ["none", "other"])
def test_openid_client_refuses_an_untrusted_server(ca, node, server, pki, tokens):
    run = run_node(node, server, tokens["ES256"], ca=None if ca == "none" else pki.other_ca)
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert "UNABLE_TO_VERIFY_LEAF_SIGNATURE" in run.stderr, run.stderr


# --------------------------------------------------------------------------- Go: go-oidc v2


@pytest.fixture(scope="module")
def go_oidc(tmp_path_factory) -> Path:
    """Build go-oidc/main.go offline (GOPATH mode against Debian's packaged sources)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("go not found: apt-get install golang-go golang-github-coreos-go-oidc-dev")
    if not (GO_OIDC_PKG / "oidc.go").is_file():
        pytest.fail(f"go-oidc not found in {GO_OIDC_PKG}: apt-get install golang-github-coreos-go-oidc-dev")
    out = tmp_path_factory.mktemp("go-oidc") / "go-oidc"
    # A persistent build cache beside the issuerd binary (target/go-cache) keeps reruns fast.
    cache = os.environ.get("GOCACHE") or str(ISSUERD_BIN.parent.parent / "go-cache")
    env = dict(os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOFLAGS="", GOCACHE=cache)
    build = subprocess.run(
        [go, "build", "-o", str(out), "./tests/interop/go-oidc"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return out


def run_go(binary: Path, server, token: Path, *, audience: str = AUDIENCE, ca: Path | None) -> subprocess.CompletedProcess:
    cmd = [str(binary), "-issuer", server.issuer, "-audience", audience, "-token-file", str(token)]
    if ca is not None:
        cmd += ["-ca", str(ca)]
    # No SSL_CERT_FILE/SSL_CERT_DIR: the "system roots" case must not pick up the test CA.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)


@pytest.mark.parametrize("alg", ALGS)
def test_go_oidc_over_https(alg, go_oidc, server, pki, tokens):
    run = run_go(go_oidc, server, tokens[alg], ca=pki.ca)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stderr}"
    out = json.loads(run.stdout)
    assert out["iss"] == server.issuer
    assert out["sub"] == SUBJECT
    assert out["aud"] == [AUDIENCE]
    check_claims(out["claims"], server.issuer)


def test_go_oidc_refuses_wrong_audience(go_oidc, server, pki, tokens):
    run = run_go(go_oidc, server, tokens["RS256"], audience=WRONG_AUDIENCE, ca=pki.ca)
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert f'expected audience "{WRONG_AUDIENCE}"' in run.stderr, run.stderr


@pytest.mark.parametrize("ca", ["none", "other"])
def test_go_oidc_refuses_an_untrusted_server(ca, go_oidc, server, pki, tokens):
    run = run_go(go_oidc, server, tokens["RS256"], ca=None if ca == "none" else pki.other_ca)
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert "x509: certificate signed by unknown authority" in run.stderr, run.stderr
