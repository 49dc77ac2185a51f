"""The project file: found upward, validated before anything starts, one line per mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gameday import project
from gameday.errors import ConfigError
from gameday.manifests import Manifests

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: production}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
        - {name: sidecar, image: envoy:1.30}
        - {name: app, image: "registry.example.com/shop/cart:4.2.0", ports: [{containerPort: 7000}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart-svc}
spec:
  selector: {app: cart}
  ports: [{port: 8080, targetPort: 7000}]
"""

GOOD = """\
namespace: shop
services:
  cart:
    manifests: k8s/
    container: app
    service: {name: cart-svc}
    endpoints: {health: /healthz}
    release: {json: build.release}
    load:
      users: 3
      requests:
        - {path: /api/cart, weight: 3, expect: [200]}
        - {method: POST, path: /api/cart, body: {sku: a}, expect: [201]}
images:
  - repository: shop/cart
    command: ["{python}", "{dir}/cart.py"]
    port: 7000
    tags: {"4.2.0": {env: {VERSION: "4.2.0"}}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cart.yaml").write_text(MANIFEST)
    (tmp_path / "gameday.yaml").write_text(GOOD)
    return tmp_path


def test_a_project_file_resolves_every_name(repo: Path):
    (repo / "sub" / "dir").mkdir(parents=True)
    found = project.load(start=repo / "sub" / "dir")  # found upward from the working directory
    assert found.path == repo / "gameday.yaml"
    cart = found.service("cart")
    assert (cart.namespace, cart.deployment, cart.container, cart.service_name) == ("shop", "cart", "app", "cart-svc")
    assert cart.release.json == "build.release" and cart.load.users == 3
    assert [(r.method, r.path, r.weight, r.expect) for r in cart.load.requests] == [
        ("GET", "/api/cart", 3, (200,)), ("POST", "/api/cart", 1, (201,))]
    assert found.service() is cart  # the only service is the default
    manifests = Manifests.load(cart)
    assert (manifests.container, manifests.repository, manifests.service_port) == ("app", "registry.example.com/shop/cart",
                                                                                   8080)
    docs = manifests.render("4.3.0-bad", replicas=5)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == ["envoy:1.30", "registry.example.com/shop/cart:4.3.0-bad"]  # only the named container moves
    assert deployment["spec"]["replicas"] == 5
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}  # production is mapped to the rehearsal namespace
    spec = found.catalog().resolve("shop/cart:4.2.0")
    assert spec.argv[-1] == str(repo / "cart.py")


def test_without_a_project_file_the_demo_project_is_used(tmp_path: Path):
    found = project.load(start=tmp_path)
    assert found.is_demo and "demo" in found.services


def test_blue_green_rendering_adds_the_track_everywhere(repo: Path):
    manifests = Manifests.load(project.load(start=repo).service("cart"))
    docs = manifests.render("4.2.0", track="blue", selector_track="blue")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    assert deployment["metadata"]["name"] == "cart-blue"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "cart", "track": "blue"}
    assert service["spec"]["selector"] == {"app": "cart", "track": "blue"}


def test_canary_rendering_gives_each_track_a_service_and_splits_the_host_by_weight(repo: Path):
    manifests = Manifests.load(project.load(start=repo).service("cart"))
    canary = manifests.track_service("canary")
    assert canary["metadata"] == {"name": "cart-svc-canary", "namespace": "shop"}
    assert canary["spec"]["selector"] == {"app": "cart", "track": "canary"}
    assert canary["spec"]["ports"] == next(d for d in manifests.docs if d["kind"] == "Service")["spec"]["ports"]
    vs = manifests.virtual_service({"stable": 80, "canary": 20})
    assert (vs["kind"], vs["metadata"]["name"], vs["spec"]["hosts"]) == ("VirtualService", "cart-svc", ["cart-svc"])
    assert [(r["destination"]["host"], r["destination"]["port"]["number"], r["weight"])
            for r in vs["spec"]["http"][0]["route"]] == [("cart-svc-stable", 8080, 80), ("cart-svc-canary", 8080, 20)]


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("users: 3", "usres: 3"), "unknown key services.cart.load.usres (did you mean 'users'?"),
    (lambda t: t.replace("users: 3", "users: many"), "services.cart.load.users: Input should be a valid integer"),
    (lambda t: t.replace("path: /api/cart, weight: 3", "path: api/cart, weight: 3"), "is not a path"),
    (lambda t: t.replace("release: {json: build.release}", "release: {}"), "give exactly one of header"),
    (lambda t: t.replace("expect: [200]", "expect: [700]"), "are not HTTP statuses"),
    (lambda t: t.replace("manifests: k8s/", "manifests: deploy/"), "services.cart.manifests: deploy/ does not exist"),
    (lambda t: t.replace("namespace: shop", "namespace: Shop_1"), "is not a Kubernetes name"),
    (lambda t: t + "default-service: checkout\n", "default-service 'checkout' is not one of the services"),
    (lambda t: t.replace("services:", "service:"), "unknown key service"),
    (lambda t: "services: [\n", "is not valid YAML"),
    (lambda t: t.replace("    tags:", "    tags: 3\n    x:"), "images"),
])
def test_every_mistake_is_one_line_naming_file_key_and_fix(repo: Path, edit, expected):
    path = repo / "gameday.yaml"
    path.write_text(edit(GOOD))
    with pytest.raises(ConfigError) as caught:
        project.parse(path).catalog()
    line = caught.value.one_line()
    assert expected in line and str(path) in line and "\n" not in line


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("name: cart, namespace", "name: carts, namespace"), "no Deployment named 'cart' (Deployments found: carts)"),
    (lambda t: t.replace("name: app,", "name: main,"), "no container 'app' (containers: sidecar, main)"),
    (lambda t: t.replace("name: cart-svc", "name: cart"), "no Service named 'cart-svc'"),
    (lambda t: t.replace("spec:\n  replicas", "spec:\n  replicas: [\n"), "does not parse"),
])
def test_manifest_mistakes_are_caught_before_anything_starts(repo: Path, edit, expected):
    (repo / "k8s" / "cart.yaml").write_text(edit(MANIFEST))
    with pytest.raises(ConfigError) as caught:
        Manifests.load(project.parse(repo / "gameday.yaml").service("cart"))
    assert expected in caught.value.one_line()


def test_a_service_not_in_the_project_is_named_with_a_suggestion(repo: Path):
    with pytest.raises(ConfigError) as caught:
        project.parse(repo / "gameday.yaml").service("crt")
    assert "service 'crt' is not in" in caught.value.one_line() and "did you mean 'cart'" in caught.value.one_line()


def test_gameday_run_with_a_bad_project_file_exits_2_in_one_line(repo: Path):
    (repo / "gameday.yaml").write_text(GOOD.replace("users: 3", "users: -1"))
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "services.cart.load.users" in lines[0] and "Traceback" not in done.stderr


def test_a_feature_naming_an_unknown_deployment_or_release_exits_2_before_anything_starts(repo: Path):
    features = repo / "features"
    features.mkdir()
    (features / "f.feature").write_text(
        "Feature: f\n  Scenario: s\n    Given the service \"cart\" runs release \"9.9.9\" with 2 replicas\n")
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run"], cwd=repo, capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "GAMEDAY_CLUSTER": "local"})
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "f.feature:3" in out and "shop/cart:9.9.9" in out and "known tags: 4.2.0" in out
    (features / "f.feature").write_text(
        "Feature: f\n  Scenario: s\n    When the on-call engineer undoes the rollout of deployment \"cart-v2\"\n")
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "deployment 'cart-v2' is not a Deployment of any service" in done.stdout + done.stderr


def test_a_locustfile_that_does_not_import_exits_2_before_anything_starts(repo: Path):
    (repo / "load.py").write_text("from locust import HttpUser\nclass Shopper(HttpUser):\n    def oops(:\n")
    (repo / "gameday.yaml").write_text(GOOD.replace("""      requests:
        - {path: /api/cart, weight: 3, expect: [200]}
        - {method: POST, path: /api/cart, body: {sku: a}, expect: [201]}""", "      locustfile: load.py"))
    features = repo / "features"
    features.mkdir()
    (features / "f.feature").write_text("Feature: f\n  Scenario: s\n    Given steady traffic from 2 users\n")
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, lines
    assert "f.feature:3" in lines[0] and "load.py does not import: SyntaxError" in lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--config", "missing.yaml"], "project file missing.yaml does not exist"),
    (["--images", "nope.yaml"], "image catalog"),
])
def test_a_missing_config_or_catalog_file_is_one_line_exit_2(repo: Path, args, expected):
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "run", *args], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and expected in lines[0], lines


@pytest.mark.parametrize(("args", "expected"), [
    (["--release-header", "X-V", "--release-json", "v"], "say how a response names the release"),
    (["--release-header", "X-V", "--manifests", "nowhere"], "does not exist"),
    (["--release-header", "X-V", "--command", "'unclosed"], "does not parse"),
])
def test_gameday_init_refuses_bad_input_in_one_line(repo: Path, args, expected):
    (repo / "gameday.yaml").unlink()
    argv = [sys.executable, "-m", "gameday.cli", "init", "--command", "{python} app.py", *args]
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=60)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and expected in lines[0], lines
    assert not (repo / "gameday.yaml").exists()


def test_gameday_init_never_overwrites_a_project_file(repo: Path):
    before = (repo / "gameday.yaml").read_text()
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "init", "--command", "x", "--release-header", "X-V"],
                          cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "already exists" in done.stdout + done.stderr
    assert (repo / "gameday.yaml").read_text() == before
