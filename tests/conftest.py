"""Suite-wide hygiene shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday import lifecycle


@pytest.fixture(autouse=True)
def _no_dead_part_outlives_its_test() -> Iterator[None]:
    """A harness part a test killed on purpose must not end the next test's waits."""
    yield
    lifecycle.dead_parts()
