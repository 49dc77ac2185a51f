"""Real locust against a service that is not the demo: declared requests, a team's own locustfile.

Each load run is bounded by max_seconds <= 10 and stopped as soon as the test has seen enough.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gameday.errors import ConfigError
from gameday.load import LoadGenerator, LoadProfile, ReleaseReader, RequestSpec, check_locustfile
from gameday.load.records import RequestRecord

if TYPE_CHECKING:
    from conftest import CheckoutApi


def run_until(load: LoadGenerator, count: int, timeout: float) -> list[RequestRecord]:
    """Start ``load``, wait for ``count`` records (or ``timeout``), stop it; every record."""
    try:
        load.start()
        deadline = time.monotonic() + timeout
        while len(load.records()) < count and time.monotonic() < deadline and load.running:
            time.sleep(0.1)
    finally:
        load.stop()
    return load.records()


def test_declared_requests_hit_their_paths_by_weight(checkout_api: CheckoutApi, tmp_path: Path) -> None:
    profile = LoadProfile(users=3, rate=0, release=ReleaseReader(header="X-App-Version"), requests=(
        RequestSpec(path="/cart", weight=6, expect=(200,)),
        RequestSpec(method="POST", path="/cart", body={"sku": "A1"}, weight=3, expect=(201,)),
        RequestSpec(method="POST", path="/cart/checkout", weight=1, name="checkout"),  # 409: not expected
    ))
    records = run_until(LoadGenerator(checkout_api.url, profile=profile, max_seconds=10, workdir=tmp_path),
                        count=600, timeout=8)
    assert len(records) >= 300
    # Locust picks each request at random by weight: at 300 requests or more a share strays 0.15
    # from its weight once in 1e7 runs (at 600, once in 2e13).
    routes = Counter((r.method, r.path) for r in records)
    assert set(routes) == {("GET", "/cart"), ("POST", "/cart"), ("POST", "checkout")}
    for route, weight in ((("GET", "/cart"), 0.6), (("POST", "/cart"), 0.3), (("POST", "checkout"), 0.1)):
        assert abs(routes[route] / len(records) - weight) <= 0.15, (route, routes)
    # The service saw exactly the declared paths and methods, each request recorded (bar the
    # few in flight when locust stopped).
    assert set(checkout_api.served) == {("GET", "/cart"), ("POST", "/cart"), ("POST", "/cart/checkout")}
    assert 0 <= sum(checkout_api.served.values()) - len(records) <= 3
    # Expected statuses are successes; the 409 nobody expected is a failure naming status and route.
    assert {(r.path, r.status, r.failed) for r in records} == {
        ("/cart", 200, False), ("/cart", 201, False), ("checkout", 409, True)}
    refused = next(r for r in records if r.failed)
    assert refused.error == "CatchResponseError: status 409 from POST checkout (expected < 400)"
    assert {r.version for r in records} == {"3.1.0"}


TEAM_LOCUSTFILE = '''
from locust import {user}, constant_throughput, task


class Shopper({user}):
    wait_time = constant_throughput(20)

    @task(3)
    def view_cart(self):
        self.client.get("/cart")

    @task(1)
    def cart_as_text(self):
        # The team's own check: a 200 without items is a broken cart.
        with self.client.get("/cart/text", catch_response=True) as response:
            if "items" not in response.text:
                response.failure("no items in the cart")

    @task(1)
    def checkout_empty(self):
        # A 409 for an empty cart is the service doing its job.
        with self.client.post("/cart/checkout", catch_response=True) as response:
            if response.status_code == 409:
                response.success()
'''


@pytest.mark.parametrize(
    "user, release",
    [
        ("HttpUser", ReleaseReader(header="X-App-Version")),
        ("FastHttpUser", ReleaseReader(json="build.release")),
    ],
    ids=["HttpUser-header", "FastHttpUser-json-field"],
)
def test_a_team_locustfile_runs_unchanged_and_every_request_is_recorded(
        checkout_api: CheckoutApi, tmp_path: Path, user: str, release: ReleaseReader) -> None:
    locustfile = tmp_path / "team" / "locustfile.py"
    locustfile.parent.mkdir()
    locustfile.write_text(TEAM_LOCUSTFILE.format(user=user))
    before = locustfile.read_bytes()
    profile = LoadProfile(users=2, locustfile=locustfile, release=release)
    records = run_until(LoadGenerator(checkout_api.url, profile=profile, max_seconds=8, workdir=tmp_path / "run"),
                        count=150, timeout=6)
    assert locustfile.read_bytes() == before
    assert len(records) >= 120  # each of the three tasks at least once: missed once in 2e11 runs
    assert 0 <= sum(checkout_api.served.values()) - len(records) <= 2  # every request, bar those in flight
    assert {r.version for r in records if r.path != "/cart/text"} == {"3.1.0"}
    # A plain-text body names no release; the header is on every response.
    text_versions = {r.version for r in records if r.path == "/cart/text"}
    assert text_versions == ({"none"} if release.json else {"3.1.0"})
    # The team's verdict: its 200 without items failed, its 409 did not.
    outcomes = {(r.method, r.path, r.status, r.failed) for r in records}
    assert outcomes == {("GET", "/cart", 200, False), ("GET", "/cart/text", 200, True),
                        ("POST", "/cart/checkout", 409, False)}
    assert {r.error for r in records if r.failed} == {"CatchResponseError: no items in the cart"}


BROKEN = {
    "syntax": ("from locust import HttpUser\nclass Shopper(HttpUser:\n    pass\n", "SyntaxError: "),
    "import": ("from locust import HttpUser\nimport checkout_client_that_is_not_installed\n",
               "ModuleNotFoundError: No module named 'checkout_client_that_is_not_installed'"),
    "raises": ("raise ImportError('the cart SDK needs CART_TOKEN')\n", "ImportError: the cart SDK needs CART_TOKEN"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_locustfile_that_does_not_import_is_one_line_before_any_load(tmp_path: Path, kind: str) -> None:
    source, words = BROKEN[kind]
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(source)
    load = LoadGenerator("http://127.0.0.1:9", profile=LoadProfile(locustfile=locustfile), max_seconds=5,
                         workdir=tmp_path / "run")
    began = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load.start()
    assert time.monotonic() - began < 5
    message = caught.value.message
    assert message.startswith(f"locustfile {locustfile} does not import: {words}")
    assert "\n" not in caught.value.one_line() and "Traceback" not in message
    assert not load.running and not (tmp_path / "run" / "locust.log").exists()  # locust never started


def test_a_missing_locustfile_or_one_without_users(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not import: FileNotFoundError"):
        check_locustfile(tmp_path / "nowhere.py")
    helpers = tmp_path / "helpers.py"
    helpers.write_text("def login(client):\n    pass\n")
    with pytest.raises(ConfigError, match="defines no User class"):
        check_locustfile(helpers)
    good = tmp_path / "good.py"
    good.write_text("from locust import HttpUser, task\n\nclass A(HttpUser):\n    @task\n    def t(self):\n"
                    "        pass\n")
    assert check_locustfile(good) == ["A"]
