"""deploy/kubernetes/in-cluster/: issuerd reading the keys from the API server, as the tools judge it.

- `kubernetes-validate --strict` against the newest schema it bundles (and the check can fail).
- What the manifests promise: the ClusterRoleBinding grants system:service-account-issuer-discovery
  to exactly the ServiceAccount the Deployment runs as; the token is mounted in that pod only;
  hardening; probes on the admin port; the bucket writer from a Secret.
- The Deployment's args are ones `issuerd serve` accepts: run outside a pod with them, it gets past
  the configuration and stops at finding the API server, naming why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DIR = REPO_ROOT / "deploy" / "kubernetes" / "in-cluster"
ISSUERD_BIN = Path(os.environ.get("ISSUERD_BIN") or REPO_ROOT / "target" / "debug" / "issuerd")
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")


def docs() -> list[dict]:
    out = []
    for path in sorted(DIR.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert out, f"no manifests in {DIR}"
    return out


def one(kind: str) -> dict:
    found = [d for d in docs() if d["kind"] == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


def validate(*paths: Path) -> subprocess.CompletedProcess:
    if not VALIDATOR.is_file():
        pytest.fail(f"{VALIDATOR} not found: install tests/interop/requirements.txt")
    return subprocess.run(
        [str(VALIDATOR), "--strict", "--no-warn", *map(str, paths)], capture_output=True, text=True
    )


def test_manifests_validate_strictly(tmp_path):
    result = validate(*sorted(DIR.glob("*.yaml")))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.count("passed for resource") == len(docs()) == 4, out
    # The check can fail: a misspelt field of the binding is refused.
    bad = one("ClusterRoleBinding")
    bad["subjects"][0]["namespaces"] = "issuerd"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = validate(path)
    assert result.returncode != 0 and "namespaces" in result.stdout + result.stderr


def test_the_binding_grants_discovery_to_the_deployment_s_service_account_only():
    binding = one("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:service-account-issuer-discovery",
    }
    account = one("ServiceAccount")
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert binding["subjects"] == [{
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == account["metadata"]["namespace"]
    assert one("Namespace")["metadata"]["name"] == account["metadata"]["namespace"]
    # The token is mounted where issuerd asks for it, not into every pod of the account.
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is True


def test_the_deployment_is_hardened_and_mirrors_from_the_api_server():
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    args = container["args"]
    assert args[:2] == ["serve", "--from-kube-apiserver"]
    assert not any(a.startswith("--issuer") or a.startswith("--key-file") for a in args)
    flags = dict(a.removeprefix("--").split("=", 1) for a in args[2:])
    assert flags["mirror"].startswith("s3://")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert flags["admin-listen"].endswith(f":{ports['admin']}")
    assert flags["listen"].endswith(f":{ports['http']}")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["envFrom"] == [{"secretRef": {"name": "issuerd-bucket-writer"}}]
    assert "AWS_REGION" in {e["name"] for e in container["env"]}


def test_issuerd_accepts_the_deployment_args(tmp_path):
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it (cargo build) or set ISSUERD_BIN")
    container = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = [a.replace("0.0.0.0:", "127.0.0.1:") for a in container["args"]]
    args = [a.replace(":8080", ":0").replace(":9090", ":0") for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISSUERD_", "KUBECONFIG", "AWS_"))}
    env.update({"HOME": str(tmp_path), "NO_COLOR": "1", "AWS_REGION": "eu-west-1",
                "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"})
    result = subprocess.run([str(ISSUERD_BIN), *args], capture_output=True, text=True, env=env, timeout=60)
    # Past the configuration (which would exit 2 naming a flag), stopped at finding the API
    # server: neither a pod's token nor a kubeconfig is here.
    assert result.returncode == 2, result.stderr
    assert "--from-kube-apiserver" in result.stderr, result.stderr
    assert "not in a pod" in result.stderr and "kubeconfig" in result.stderr, result.stderr
