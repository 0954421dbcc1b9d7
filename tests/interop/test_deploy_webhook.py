"""deploy/kubernetes/webhook/: the webhook's manifests as their tools judge them.

- The Kubernetes resources: `kubernetes-validate --strict` against the newest schema it bundles,
  and the properties the issue and the comments promise (webhook configuration, hardening,
  probes on the admin port, a PDB, CA injection naming the serving Certificate).
- The cert-manager resources (not in kubernetes-validate's schemas): validated against
  cert-manager's CRD schemas (node/cert-manager.mjs, @kubernetes-models/cert-manager), and their
  references resolve (issuers, secrets, the Service's DNS names).
- The Deployment's args are ones `issuerd webhook` starts with: the binary is run with them
  (paths pointed at fixtures; the API server a stand-in here, reached through KUBECONFIG as kube
  would reach the real one from the pod) and must report ready; the example map is one it reads.
- The RBAC grants the Deployment's ServiceAccount what --service-account-annotations reads.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DIR = REPO_ROOT / "deploy" / "kubernetes" / "webhook"
TLS = REPO_ROOT / "tests" / "fixtures" / "tls"
ISSUERD_BIN = Path(os.environ.get("ISSUERD_BIN") or REPO_ROOT / "target" / "debug" / "issuerd")
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")
CERT_MANAGER = "cert-manager.io/v1"


def docs() -> list[dict]:
    out = []
    for path in sorted(DIR.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert out, f"no manifests in {DIR}"
    return out


def one(kind: str, name: str | None = None) -> dict:
    found = [d for d in docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, found)
    return found[0]


def test_kubernetes_resources_validate_strictly(tmp_path):
    if not VALIDATOR.is_file():
        pytest.fail(f"{VALIDATOR} not found: install tests/interop/requirements.txt")
    core = [d for d in docs() if d["apiVersion"] != CERT_MANAGER]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    result = subprocess.run([str(VALIDATOR), "--strict", "--no-warn", str(path)], capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.count("passed for resource") == len(core), out
    # The check can fail: a misspelt field of the webhook configuration is refused.
    bad = one("MutatingWebhookConfiguration")
    bad["webhooks"][0]["reinvocationPolicies"] = "IfNeeded"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run([str(VALIDATOR), "--strict", "--no-warn", str(path)], capture_output=True, text=True)
    assert result.returncode != 0 and "reinvocationPolicies" in result.stdout + result.stderr


def test_the_webhook_configuration_is_the_one_the_issue_asks_for():
    (hook,) = one("MutatingWebhookConfiguration")["webhooks"]
    assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert hook["sideEffects"] == "None"
    assert hook["failurePolicy"] == "Fail"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["rules"] == [{
        "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
        "resources": ["pods"], "scope": "Namespaced",
    }]
    service = one("Service", "issuerd-webhook")
    client = hook["clientConfig"]["service"]
    assert client == {
        "name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"],
        "path": "/mutate", "port": service["spec"]["ports"][0]["port"],
    }
    excluded = {e["key"]: e for e in hook["namespaceSelector"]["matchExpressions"]}
    leave_alone = excluded["kubernetes.io/metadata.name"]
    assert leave_alone["operator"] == "NotIn"
    assert {"kube-system", "cert-manager", service["metadata"]["namespace"]} <= set(leave_alone["values"])
    opt_out = {e["key"]: e["operator"] for e in hook["objectSelector"]["matchExpressions"]}
    assert opt_out["issuerd.io/skip-webhook"] == "DoesNotExist"


def test_deployment_is_hardened_available_and_serves_the_certificate_secret():
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = deployment_args(container)
    assert args["listen"].endswith(f":{ports['https']}")
    assert args["admin-listen"].endswith(f":{ports['admin']}")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args["tls-cert"] == f"{mounts['tls']}/tls.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    certificate = one("Certificate", "issuerd-webhook")
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert volumes["map"]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    labels = spec["template"]["metadata"]["labels"]
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    assert one("Service")["spec"]["ports"][0]["targetPort"] == "https"
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1


def deployment_args(container: dict) -> dict:
    """The container's `--name=value` args (a bare `--flag` as "true")."""
    pairs = (a.removeprefix("--").split("=", 1) for a in container["args"][1:])
    return {p[0]: (p[1] if len(p) == 2 else "true") for p in pairs}


def test_rbac_grants_what_service_account_annotations_reads():
    pod = one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment_args(container).get("service-account-annotations") == "true"
    account = one("ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["namespace"] == one("Deployment")["metadata"]["namespace"]
    assert pod["automountServiceAccountToken"] is True
    binding = one("ClusterRoleBinding")
    assert binding["subjects"] == [{
        "kind": "ServiceAccount", "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }]
    role = one("ClusterRole", binding["roleRef"]["name"])
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}]


class StandInApiServer(BaseHTTPRequestHandler):
    """Lists no ServiceAccounts and holds each watch open: enough for the webhook to be ready."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.paths.append(self.path)
        if "watch=true" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(30)
            return
        body = json.dumps({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"resourceVersion": "1"}, "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_cert_manager_resources_validate_against_cert_managers_crd_schemas(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install nodejs and npm (apt-get install nodejs npm)")
    script = Path(__file__).resolve().parent / "node" / "cert-manager.mjs"
    ours = [d for d in docs() if d["apiVersion"] == CERT_MANAGER]
    path = tmp_path / "cert-manager.yaml"
    path.write_text(yaml.safe_dump_all(ours))
    result = subprocess.run([node, str(script), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(ours) == 4, result.stdout
    # The check can fail: a duration that is not a string, an issuerRef without a name.
    bad = [d for d in ours if d["kind"] == "Certificate"]
    bad[0]["spec"]["duration"] = 2160
    del bad[1]["spec"]["issuerRef"]["name"]
    path.write_text(yaml.safe_dump_all(bad))
    result = subprocess.run([node, str(script), str(path)], capture_output=True, text=True)
    assert result.returncode == 1, result.stdout
    assert "spec/duration must be string" in result.stdout, result.stdout
    assert "spec/issuerRef must have required property name" in result.stdout, result.stdout


def test_cert_manager_resources_resolve():
    hook_config = one("MutatingWebhookConfiguration")
    injected = hook_config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    namespace, name = injected.split("/")
    serving = one("Certificate", name)
    assert serving["metadata"]["namespace"] == namespace
    service = one("Service")
    svc = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert svc in serving["spec"]["dnsNames"]
    assert "server auth" in serving["spec"]["usages"]
    issuers = {d["metadata"]["name"]: d for d in docs() if d["kind"] == "Issuer"}
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    ca_cert = one("Certificate", "issuerd-webhook-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert "selfSigned" in issuers[ca_cert["spec"]["issuerRef"]["name"]]["spec"]
    for d in docs():
        if d["apiVersion"] == CERT_MANAGER:
            assert d["kind"] in {"Issuer", "Certificate"}, d["kind"]
            assert d["metadata"]["namespace"] == namespace


def test_issuerd_starts_with_the_deployment_args_and_the_example_map(tmp_path):
    if not ISSUERD_BIN.is_file():
        pytest.fail(f"issuerd binary not found at {ISSUERD_BIN}: build it (cargo build) or set ISSUERD_BIN")
    container = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "tls.crt").write_text((TLS / "server.crt.pem").read_text())
    (tmp_path / "tls" / "tls.key").write_text((TLS / "server.key.pem").read_text())
    (tmp_path / "map").mkdir()
    for key, value in one("ConfigMap")["data"].items():
        (tmp_path / "map" / key).write_text(value)
    args = []
    for arg in container["args"]:
        for name, path in mounts.items():
            arg = arg.replace(path, str(tmp_path / name))
        arg = arg.replace("0.0.0.0:9443", "127.0.0.1:0").replace("0.0.0.0:9090", "127.0.0.1:0")
        args.append(arg)
    api = ThreadingHTTPServer(("127.0.0.1", 0), StandInApiServer)
    api.daemon_threads = True
    api.paths = []
    threading.Thread(target=api.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{api.server_address[1]}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUERD_")}
    env["NO_COLOR"] = "1"
    env["KUBECONFIG"] = str(kubeconfig)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = subprocess.Popen([str(ISSUERD_BIN), *args], stderr=subprocess.PIPE, text=True, env=env)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    try:
        log, admin = "", None
        deadline = time.monotonic() + 20
        while admin is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            log += line
            match = re.search(r"admin listener ready listen=(\S+)", line)
            admin = match.group(1) if match else None
        assert admin is not None, f"no admin listener within 20 s:\n{log}"
        # Ready as Kubernetes' probe sees it: /readyz on the admin port, once ServiceAccounts
        # are listed.
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{admin}/readyz", timeout=5) as response:
                    status = response.status
                    break
            except urllib.error.HTTPError as error:
                status = error.code
                time.sleep(0.05)
        assert status == 200, f"/readyz {status}:\n{log}"
        assert any(p.startswith("/api/v1/serviceaccounts") for p in api.paths), api.paths
    finally:
        api.shutdown()
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, f"exit {code} after SIGTERM"
