"""Load: real locust as a subprocess, a record per request, golden signals and triggers.

    from gameday.load import LoadGenerator, ErrorRateAbove
    with LoadGenerator("http://127.0.0.1:18080", users=5, max_seconds=60) as load:
        detected_at = ErrorRateAbove(threshold=0.05, for_seconds=10).wait(load, timeout=60)
"""

from gameday.load.generator import LoadGenerator
from gameday.load.records import RequestRecord
from gameday.load.signals import GoldenSignals, golden_signals
from gameday.load.triggers import (
    AllOf,
    ErrorRateAbove,
    ErrorRateAtMost,
    LatencyAbove,
    LatencyAtMost,
    TriggerTimeout,
    VersionShare,
    trigger_from_data,
)

__all__ = [
    "AllOf",
    "ErrorRateAbove",
    "ErrorRateAtMost",
    "GoldenSignals",
    "LatencyAbove",
    "LatencyAtMost",
    "LoadGenerator",
    "RequestRecord",
    "TriggerTimeout",
    "VersionShare",
    "golden_signals",
    "trigger_from_data",
]
