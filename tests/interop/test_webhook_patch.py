"""The IRSA webhook's golden AdmissionReviews (tests/fixtures/webhook), judged by tools that know
nothing of issuerd.

The Rust tests (src/webhook/tests.rs) check that issuerd answers each CASE.request.json with
CASE.response.json. Here each response's patch is base64-decoded and applied to the request's
pod by Python's `jsonpatch`, and every resulting pod is validated with `kubernetes-validate
--strict` (no unknown fields, right types) against the newest schema it bundles. What the
schema cannot say, and the API server refuses, is checked here too: unique volume names,
unique mount paths per container, mounts of declared volumes only, unique env names per
container. The response envelope must echo the request's apiVersion, kind and uid.

Missing tools fail the run; nothing is skipped.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonpatch
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "webhook"
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")


def cases() -> list[str]:
    names = sorted(p.name.removesuffix(".request.json") for p in FIXTURES.glob("*.request.json"))
    assert len(names) >= 8, names
    return names


def load(case: str) -> tuple[dict, dict]:
    request = json.loads((FIXTURES / f"{case}.request.json").read_text())
    response = json.loads((FIXTURES / f"{case}.response.json").read_text())
    return request, response


def patch_of(response: dict) -> list | None:
    answer = response["response"]
    if "patch" not in answer:
        assert "patchType" not in answer, answer
        return None
    assert answer["patchType"] == "JSONPatch"
    return json.loads(base64.b64decode(answer["patch"], validate=True))


def patched_pods() -> dict[str, dict]:
    """Every pod the webhook is asked about, with its response's patch applied (if any)."""
    pods = {}
    for case in cases():
        request, response = load(case)
        pod = request["request"].get("object")
        if not isinstance(pod, dict) or pod.get("kind") != "Pod":
            continue
        patch = patch_of(response)
        pods[case] = jsonpatch.apply_patch(pod, patch) if patch is not None else pod
    return pods


def api_server_refusals(pod: dict) -> list[str]:
    """What the API server refuses and the schema does not say."""
    spec = pod["spec"]
    refusals = []
    volumes = [v["name"] for v in spec.get("volumes") or []]
    if len(set(volumes)) != len(volumes):
        refusals.append(f"duplicate volume names {volumes}")
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        name = container["name"]
        mounts = container.get("volumeMounts") or []
        paths = [m["mountPath"].rstrip("/") for m in mounts]
        if len(set(paths)) != len(paths):
            refusals.append(f"{name}: duplicate mount paths {paths}")
        refusals += [f"{name}: mount of undeclared volume {m['name']}" for m in mounts if m["name"] not in volumes]
        env = [e["name"] for e in container.get("env") or []]
        if len(set(env)) != len(env):
            refusals.append(f"{name}: duplicate env names {env}")
    return refusals


def validate(paths: list[Path]) -> subprocess.CompletedProcess:
    if not VALIDATOR.is_file():
        pytest.fail(f"{VALIDATOR} not found: install tests/interop/requirements.txt")
    return subprocess.run(
        [str(VALIDATOR), "--strict", "--no-warn", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def write_pods(pods: dict[str, dict], directory: Path) -> list[Path]:
    paths = []
    for case, pod in pods.items():
        pod = json.loads(json.dumps(pod))
        # kubernetes-validate names every resource; a ReplicaSet's pod has only generateName.
        pod["metadata"].setdefault("name", pod["metadata"].get("generateName", "pod-") + "x")
        path = directory / f"{case}.json"
        path.write_text(json.dumps(pod))
        paths.append(path)
    return paths


@pytest.mark.parametrize("case", cases())
def test_the_response_echoes_the_review(case):
    request, response = load(case)
    assert response["apiVersion"] == request["apiVersion"]
    assert response["kind"] == request["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == request["request"]["uid"]
    if not response["response"]["allowed"]:
        assert response["response"]["status"]["code"] == 400
        assert "patch" not in response["response"]


@pytest.mark.parametrize("case", sorted(patched_pods()))
def test_the_patch_applies_to_the_pod_the_rust_tests_expect(case):
    request, response = load(case)
    patch = patch_of(response)
    if patch is None:
        assert not (FIXTURES / "patched" / f"{case}.json").exists()
        return
    # Fine-grained additions only: nothing replaced, no whole container list.
    assert {op["op"] for op in patch} == {"add"}
    assert not {op["path"] for op in patch} & {"/spec/containers", "/spec/initContainers"}
    expected = json.loads((FIXTURES / "patched" / f"{case}.json").read_text())
    assert jsonpatch.apply_patch(request["request"]["object"], patch) == expected


def test_patched_pods_pass_what_the_api_server_checks():
    pods = patched_pods()
    assert len(pods) >= 6, sorted(pods)
    for case, pod in pods.items():
        assert api_server_refusals(pod) == [], case


def test_patched_pods_validate_strictly_against_the_current_schema(tmp_path):
    pods = patched_pods()
    result = validate(write_pods(pods, tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.findall(r"(\S+)\.json passed for resource pod/\S+ against version (\S+)", output)
    assert {Path(f).name for f, _ in passed} == set(pods), output
    major_minor = {tuple(int(p) for p in v.split(".")[:2]) for _, v in passed}
    assert all(v >= (1, 33) for v in major_minor), passed


def test_strict_validation_and_the_refusal_checks_can_fail(tmp_path):
    pods = patched_pods()
    pod = json.loads(json.dumps(pods["v1-basic"]))
    # A misspelt field in what the webhook adds: the schema refuses it.
    pod["spec"]["containers"][0]["volumeMounts"][-1]["readonly"] = True
    result = validate(write_pods({"bad": pod}, tmp_path))
    assert result.returncode != 0, result.stdout
    assert "readonly" in result.stdout + result.stderr
    # Replaying a patch duplicates the volume and the mount: the schema is silent, the checks are not.
    _, response = load("v1-basic")
    twice = jsonpatch.apply_patch(pods["v1-basic"], patch_of(response))
    assert validate(write_pods({"twice": twice}, tmp_path)).returncode == 0
    refusals = api_server_refusals(twice)
    assert any("duplicate volume names" in r for r in refusals), refusals
    assert any("duplicate mount paths" in r for r in refusals), refusals
