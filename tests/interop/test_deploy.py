"""The deployment files as their own tools judge them.

- deploy/kubernetes/*.yaml: `kubernetes-validate --strict` (no unknown fields) against the
  newest Kubernetes schema it bundles, plus the properties the manifests promise (non-root,
  read-only root, no privilege escalation, keys as a live-updated directory, probes, scrape
  annotations), and the embedded issuerd.toml read by issuerd itself.
- deploy/systemd/issuerd.service: `systemd-analyze verify`, and the exposure score of
  `systemd-analyze security --offline=yes`.

Missing tools fail the run; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
UNIT = REPO_ROOT / "deploy" / "systemd" / "issuerd.service"
KEYS_DIR = REPO_ROOT / "tests" / "fixtures" / "keys"
ISSUERD_BIN = Path(os.environ.get("ISSUERD_BIN") or REPO_ROOT / "target" / "debug" / "issuerd")
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")
# Highest exposure `systemd-analyze security` may give the unit (0 = locked down, 10 = none).
MAX_EXPOSURE = 2.0


def manifests() -> list[Path]:
    files = sorted(K8S_DIR.glob("*.yaml"))
    assert files, f"no manifests in {K8S_DIR}"
    return files


def documents() -> dict[str, dict]:
    docs = {}
    for path in manifests():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


def validate(paths: list[Path]) -> subprocess.CompletedProcess:
    if not VALIDATOR.is_file():
        pytest.fail(f"{VALIDATOR} not found: install tests/interop/requirements.txt")
    return subprocess.run(
        [str(VALIDATOR), "--strict", "--no-warn", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def test_manifests_validate_strictly_against_the_current_schema():
    result = validate(manifests())
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+) against version (\S+)", result.stdout + result.stderr)
    assert {r for r, _ in passed} == {
        "configmap/issuerd-config",
        "deployment/issuerd",
        "service/issuerd",
        "poddisruptionbudget/issuerd",
    }, result.stdout + result.stderr
    # The bundled schema is a current one, not an old default.
    major_minor = {tuple(int(p) for p in v.split(".")[:2]) for _, v in passed}
    assert all(v >= (1, 33) for v in major_minor), passed


def test_strict_validation_refuses_an_unknown_field(tmp_path):
    # The check above can fail: a misspelt field is refused.
    deployment = yaml.safe_load((K8S_DIR / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    result = validate([bad])
    assert result.returncode != 0, result.stdout
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_deployment_is_hardened_and_rotates_keys_live():
    docs = documents()
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "admin": 9090}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(ports["admin"]),
        "prometheus.io/path": "/metrics",
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ISSUERD_ADMIN_LISTEN"].endswith(":9090")
    # Keys: a whole ConfigMap/Secret directory (kubelet swaps `..data`); a subPath mount would
    # never be updated.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all("subPath" not in m for m in mounts.values())
    assert all(m.get("readOnly") for m in mounts.values())
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "configMap" in volumes["keys"] or "secret" in volumes["keys"]
    # The Service and the PDB select the Deployment's pods.
    labels = spec["template"]["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_the_configmap_config_is_one_issuerd_reads(tmp_path):
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it (cargo build) or set ISSUERD_BIN")
    docs = documents()
    config = tmp_path / "issuerd.toml"
    config.write_text(docs["ConfigMap"]["data"]["issuerd.toml"])
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["ISSUERD_CONFIG"] == f"{mounts['config']}/issuerd.toml"
    assert f'key_files = ["{mounts["keys"]}"]' in config.read_text()
    # Render with the file (its key directory replaced by a fixture key, as the pod would mount it).
    out = tmp_path / "out"
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUERD_")}
    result = subprocess.run(
        [str(ISSUERD_BIN), "--config", str(config), "render",
         "--key-file", str(KEYS_DIR / "ec256.pub.pem"), "--out", str(out)],
        capture_output=True, text=True, env=clean_env,
    )
    assert result.returncode == 0, result.stderr
    discovery = json.loads((out / "clusters/prod/.well-known/openid-configuration").read_text())
    assert discovery["issuer"] == "https://oidc.example.com/clusters/prod"


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze not found: apt-get install systemd")
    return tool


def unit_for_this_binary(tmp_path: Path) -> Path:
    # `verify` checks that ExecStart exists: point it at the binary under test.
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}")
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/issuerd serve" in text
    unit = tmp_path / "issuerd.service"
    unit.write_text(text.replace("/usr/local/bin/issuerd", str(ISSUERD_BIN.resolve())))
    return unit


def test_systemd_unit_verifies(tmp_path):
    unit = unit_for_this_binary(tmp_path)
    result = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "issuerd.service" not in result.stderr, result.stderr

    # The check can fail: an unknown directive is reported.
    broken = tmp_path / "broken" / "issuerd.service"
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = subprocess.run([systemd_analyze(), "verify", str(broken)], capture_output=True, text=True)
    assert "NoNewPrivilege" in result.stderr, result.stderr


def test_systemd_unit_is_sandboxed(tmp_path):
    text = UNIT.read_text()
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ]:
        assert directive in text, directive
    unit = unit_for_this_binary(tmp_path)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for issuerd\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout
