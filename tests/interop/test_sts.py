"""IRSA end to end with the real AWS SDK for Python.

`issuerd serve` publishes the fixture key; `issuerd sts` answers AssumeRoleWithWebIdentity for a
role whose trust policy is `issuerd trust-policy`'s output, unchanged. boto3 is configured the
way IRSA configures pods (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ENDPOINT_URL_STS) and
reads a token minted by `issuerd mint`. It must get credentials for a good token and AWS's error
for each classic mistake.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS_DIR = REPO_ROOT / "tests" / "fixtures" / "keys"
ISSUERD_BIN = Path(os.environ.get("ISSUERD_BIN") or REPO_ROOT / "target" / "debug" / "issuerd")

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app"
SERVICE_ACCOUNT = "ns/app"
AUDIENCE = "sts.amazonaws.com"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def issuerd(*args: str) -> str:
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it or set ISSUERD_BIN")
    out = subprocess.run(
        [str(ISSUERD_BIN), *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, f"issuerd {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout


@dataclass
class Proc:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(cmd: list[str], port: int, log_path: Path, ready_path: str | None):
    """Start a process, wait until it answers on `port`, then SIGTERM it and demand exit 0."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    p = Proc(proc, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n{p.log()}")
            if ready_path is None:
                if _listening(port):
                    break
            else:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"{' '.join(cmd)} never became ready\n{p.log()}")
            time.sleep(0.05)
        yield p
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                pytest.fail(f"{cmd[1]} did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{p.log()}")
            assert rc == 0, f"{cmd[1]} exited with {rc} after SIGTERM\n{p.log()}"


@dataclass
class Irsa:
    dir: Path
    key_dir: Path
    issuer: str
    down_issuer: str
    sts_url: str
    issuer_proc: Proc
    sts_proc: Proc

    def mint(
        self,
        *,
        key: str = "rsa2048.pkcs8.pem",
        issuer: str | None = None,
        subject: str = "system:serviceaccount:ns:app",
        extra: tuple = (),
    ) -> Path:
        out = self.dir / f"token-{time.monotonic_ns()}"
        issuerd(
            "mint", "--key", str(KEYS_DIR / key), "--issuer", issuer or self.issuer,
            "--subject", subject, "--out", str(out), *extra,
        )
        return out


@pytest.fixture(scope="module")
def irsa():
    with tempfile.TemporaryDirectory(prefix="issuerd-sts-") as d:
        d = Path(d)
        key_dir = d / "keys"
        key_dir.mkdir()
        shutil.copy(KEYS_DIR / "rsa2048.pkcs8.pem", key_dir / "a.pem")
        port, sts_port, down_port = free_port(), free_port(), free_port()
        issuer = f"http://127.0.0.1:{port}"
        down_issuer = f"http://127.0.0.1:{down_port}"
        policy = json.loads(issuerd(
            "trust-policy", "--issuer", issuer, "--account", ACCOUNT,
            "--service-account", SERVICE_ACCOUNT,
        ))
        roles = {
            "OpenIDConnectProviders": [
                {"Url": issuer, "ClientIDList": [AUDIENCE]},
                {"Url": down_issuer, "ClientIDList": [AUDIENCE]},
            ],
            "Roles": [{"Arn": ROLE_ARN, "MaxSessionDuration": 3600, "AssumeRolePolicyDocument": policy}],
        }
        (d / "roles.json").write_text(json.dumps(roles))
        serve_cmd = [
            str(ISSUERD_BIN), "serve", "--listen", f"127.0.0.1:{port}", "--issuer", issuer,
            "--allow-insecure-issuer", "--key-file", str(key_dir), "--debounce", "50ms",
        ]
        sts_cmd = [
            str(ISSUERD_BIN), "sts", "--listen", f"127.0.0.1:{sts_port}", "--roles",
            str(d / "roles.json"), "--allow-insecure", "--refetch-interval", "1s",
        ]
        with running(serve_cmd, port, d / "serve.log", "/readyz") as serve_proc, \
                running(sts_cmd, sts_port, d / "sts.log", None) as sts_proc:
            yield Irsa(d, key_dir, issuer, down_issuer, f"http://127.0.0.1:{sts_port}", serve_proc, sts_proc)


@pytest.fixture
def pod_env(monkeypatch, irsa):
    """The environment IRSA gives a pod, and nothing else boto3 could find credentials in."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", irsa.sts_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(irsa.dir / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(irsa.dir / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # One attempt: IDPCommunicationError is retried by botocore otherwise.
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    def use(token_file: Path) -> boto3.session.Session:
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
        return boto3.session.Session()

    return use


def credentials(session: boto3.session.Session):
    creds = session.get_credentials()
    assert creds is not None, "boto3 found no credential provider"
    assert creds.method == "assume-role-with-web-identity", creds.method
    return creds.get_frozen_credentials()


def error_of(session: boto3.session.Session) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        credentials(session)
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]


def test_boto3_gets_credentials_through_its_web_identity_provider(irsa, pod_env):
    session = pod_env(irsa.mint())
    frozen = credentials(session)
    assert frozen.access_key.startswith("ASIA") and len(frozen.access_key) == 20
    assert len(frozen.secret_key) == 40 and frozen.token
    # The credentials are ours: GetCallerIdentity through the same endpoint names the role.
    identity = session.client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/app/"), identity


def test_the_response_carries_subject_audience_provider_and_expiration(irsa):
    client = boto3.client(
        "sts", region_name="us-east-1", endpoint_url=irsa.sts_url,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    token = irsa.mint().read_text()
    before = time.time()
    r = client.assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName="s1", WebIdentityToken=token, DurationSeconds=900
    )
    assert r["SubjectFromWebIdentityToken"] == "system:serviceaccount:ns:app"
    assert r["Audience"] == AUDIENCE
    assert r["Provider"] == irsa.issuer
    assert r["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1"
    assert r["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert r["AssumedRoleUser"]["AssumedRoleId"].endswith(":s1")
    expires = r["Credentials"]["Expiration"].timestamp()
    assert 900 - 5 <= expires - before <= 900 + 5
    assert r["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize(
    "case, mint_args, code, status, message",
    [
        ("unknown key", {"key": "ec384.pkcs8.pem"}, "InvalidIdentityToken", 400, "unknown kid"),
        ("expired", {"extra": ("--not-before", "-2h")}, "ExpiredTokenException", 400, "Token expired"),
        ("not yet valid", {"extra": ("--not-before", "+1h")}, "InvalidIdentityToken", 400, "not yet valid"),
        ("wrong audience", {"extra": ("--audience", "vault")}, "InvalidIdentityToken", 400, "Incorrect token audience"),
        ("sub outside the trust policy", {"subject": "system:serviceaccount:ns:other"}, "AccessDenied", 403, "system:serviceaccount:ns:other"),
        ("issuer with no provider", {"issuer": "https://unknown.example"}, "InvalidIdentityToken", 400, "No OpenIDConnect provider found"),
        ("issuer down", {"issuer": "DOWN"}, "IDPCommunicationError", 400, "Couldn't retrieve verification key"),
    ],
)
def test_boto3_gets_the_aws_error(irsa, pod_env, case, mint_args, code, status, message):
    args = dict(mint_args)
    if args.get("issuer") == "DOWN":
        args["issuer"] = irsa.down_issuer
    got = error_of(pod_env(irsa.mint(**args)))
    assert got[0] == code and got[1] == status, f"{case}: {got}\n{irsa.sts_proc.log()[-2000:]}"
    assert message in got[2], f"{case}: {got}"


@pytest.mark.parametrize(
    "case, role_arn, code, status, message",
    [
        # The empty region's colon missing: no ARN at all to STS, which says so before the token.
        ("malformed", f"arn:aws:iam:{ACCOUNT}:role/app", "ValidationError", 400,
         f"arn:aws:iam:{ACCOUNT}:role/app is invalid (issuerd: a colon is missing"),
        # An ARN, but no role of the roles file: AWS's AccessDenied, with issuerd's hint.
        ("unknown role", f"arn:aws:iam::{ACCOUNT}:role/other", "AccessDenied", 403,
         f"(issuerd: no role arn:aws:iam::{ACCOUNT}:role/other in the roles file, which defines {ROLE_ARN})"),
    ],
)
def test_boto3_gets_the_aws_error_for_the_role_arn(
    irsa, pod_env, monkeypatch, case, role_arn, code, status, message
):
    monkeypatch.setenv("AWS_ROLE_ARN", role_arn)
    got = error_of(pod_env(irsa.mint()))
    assert got[0] == code and got[1] == status, f"{case}: {got}\n{irsa.sts_proc.log()[-2000:]}"
    assert message in got[2], f"{case}: {got}"


def test_duration_over_the_role_maximum_is_a_validation_error(irsa):
    client = boto3.client(
        "sts", region_name="us-east-1", endpoint_url=irsa.sts_url,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as caught:
        client.assume_role_with_web_identity(
            RoleArn=ROLE_ARN, RoleSessionName="s2", WebIdentityToken=irsa.mint().read_text(),
            DurationSeconds=7200,
        )
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "MaxSessionDuration" in error["Error"]["Message"]


def test_a_key_published_by_serve_is_accepted_after_the_cache_refresh(irsa, pod_env):
    # Prime the STS cache with the current key set.
    credentials(pod_env(irsa.mint()))
    new_key = "ec256.pkcs8.pem"
    token_file = irsa.mint(key=new_key)
    shutil.copy(KEYS_DIR / new_key, irsa.key_dir / "b.pem")
    # serve publishes the new key (debounce 50 ms); the STS refetches on the unknown kid, at
    # most once a second. Bounded wait.
    deadline = time.monotonic() + 10
    while True:
        try:
            frozen = credentials(pod_env(token_file))
            break
        except ClientError as e:
            if time.monotonic() > deadline:
                pytest.fail(f"new key never accepted: {e.response['Error']}\n{irsa.sts_proc.log()[-2000:]}")
            assert e.response["Error"]["Code"] == "InvalidIdentityToken", e.response["Error"]
            time.sleep(0.2)
    assert frozen.access_key.startswith("ASIA")


TLS_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "tls"


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https-private-ca"])
def test_serve_dev_with_sts_is_local_irsa_in_one_command(tmp_path, monkeypatch, tls):
    """`serve --dev --sts-listen` prints the env an SDK needs; boto3 with only that env works.

    With `--tls-cert` from a private CA (the fixture CA, trusted by nothing on this machine) the
    issuer is https and the STS beside it trusts the certificate it serves, with no other flag.
    """
    port, sts_port = free_port(), free_port()
    cmd = [
        str(ISSUERD_BIN), "serve", "--dev", "--listen", f"127.0.0.1:{port}",
        "--sts-listen", f"127.0.0.1:{sts_port}",
    ]
    if tls:
        cmd += [
            "--tls-cert", str(TLS_FIXTURES / "server.crt.pem"),
            "--tls-key", str(TLS_FIXTURES / "server.key.pem"),
        ]
    with running(cmd, port, tmp_path / "serve.log", None if tls else "/readyz") as proc:
        env = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "AWS_DEFAULT_REGION" not in env:
            if time.monotonic() > deadline:
                pytest.fail(f"no env printed:\n{proc.log()}")
            time.sleep(0.05)
            for line in proc.log().splitlines():
                if line.startswith("export "):
                    name, _, value = line[len("export "):].partition("=")
                    env[name] = value
        assert env["AWS_ENDPOINT_URL_STS"] == f"http://127.0.0.1:{sts_port}"
        token_file = Path(env["AWS_WEB_IDENTITY_TOKEN_FILE"])
        assert token_file.stat().st_mode & 0o777 == 0o600
        for name in list(os.environ):
            if name.startswith("AWS_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        identity = boto3.session.Session().client("sts").get_caller_identity()
        assert identity["Arn"].startswith("arn:aws:sts::111122223333:assumed-role/issuerd-dev/"), identity
    # The demo files are deleted on exit.
    assert not token_file.exists()
