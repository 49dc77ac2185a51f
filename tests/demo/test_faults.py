"""DEMO_FAULT parsing, and the image catalog's demo tags as golden data."""

from __future__ import annotations

import pytest

from gameday.demo.faults import FaultError, parse_faults
from gameday.demo.run import BadSetting, Config
from gameday.images import ImageCatalog


def test_parses_every_fault_kind_together() -> None:
    faults = parse_faults("error-rate=0.25, latency-ms=400,never-ready,needs-column=orders.discount_cents")
    assert faults.error_rate == 0.25
    assert faults.latency_ms == 400
    assert faults.never_ready and not faults.crash_on_start
    assert faults.needs_column == ("orders", "discount_cents")
    assert faults.describe() == ["error-rate=0.25", "latency-ms=400", "never-ready", "needs-column=orders.discount_cents"]


def test_empty_means_healthy() -> None:
    faults = parse_faults(" , ")
    assert (faults.error_rate, faults.latency_ms, faults.crash_on_start, faults.never_ready, faults.needs_column) == (
        0.0, 0, False, False, None)


@pytest.mark.parametrize(
    "text, words",
    [
        ("bogus", "unknown fault 'bogus'"),
        ("error-rate=1.5", "outside 0..1"),
        ("error-rate=half", "error-rate needs"),
        ("error-rate", "error-rate needs"),
        ("latency-ms=-3", "latency-ms needs"),
        ("latency-ms=99999999", "too large"),
        ("crash-on-start=yes", "is a flag"),
        ("needs-column=discount_cents", "table.column"),
        ("needs-column=orders.discount-cents", "table.column"),
        ("never-ready,never-ready", "given twice"),
    ],
)
def test_bad_values_are_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(FaultError, match=words.replace(".", r"\.")):
        parse_faults(text)


@pytest.mark.parametrize(
    "env, words",
    [
        ({"PORT": "http"}, "PORT='http'"),
        ({"HOST": "10.1.2.3"}, "not a loopback"),
        ({"HOST": "example"}, "not an IP"),
        ({"DEMO_CREATE_SCHEMA": "maybe"}, "DEMO_CREATE_SCHEMA"),
        ({"DEMO_FAULT": "latency-ms=x"}, "DEMO_FAULT: latency-ms"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(BadSetting, match=words):
        Config.from_env(env)


def test_defaults() -> None:
    config = Config.from_env({})
    assert (config.host, config.port, config.version, config.database_url) == ("127.0.0.1", 8080, "0.0.0-dev", None)


# Golden: what each shipped demo tag is.  A change to the demo project's images: must be deliberate.
GOLDEN_TAGS = {
    "1.0.0": "",
    "1.1.0": "",
    "1.2.0": "",
    "2.0.0-errors": "error-rate=0.5",
    "2.0.0-slow": "latency-ms=400",
    "2.0.0-crash": "crash-on-start",
    "2.0.0-unready": "never-ready",
    "2.0.0-needs-column": "needs-column=orders.discount_cents",
}


def test_catalog_demo_tags_match_golden_and_parse() -> None:
    catalog = ImageCatalog.load()
    tags = catalog.tags("gameday/demo")
    assert set(GOLDEN_TAGS) <= set(tags)
    for tag in tags:
        spec = catalog.resolve(f"gameday/demo:{tag}")
        assert spec.argv[1:] == ["-m", "gameday.demo"]
        assert spec.env["DEMO_VERSION"] == tag
        parse_faults(spec.env.get("DEMO_FAULT", ""))  # every shipped fault is valid
        if tag in GOLDEN_TAGS:
            assert spec.env.get("DEMO_FAULT", "") == GOLDEN_TAGS[tag], tag
