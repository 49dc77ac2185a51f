"""Load: real locust as a subprocess, a record per request, golden signals and triggers.

    from gameday.load import ErrorRateAbove, LoadGenerator, LoadProfile, ReleaseReader, RequestSpec, capture_baseline
    profile = LoadProfile(users=5, requests=(RequestSpec(path="/api/cart", expect=(200,)),),
                          release=ReleaseReader(header="X-App-Version"))
    with LoadGenerator("http://127.0.0.1:18080", profile=profile, max_seconds=60) as load:
        baseline = capture_baseline(load, seconds=5, timeout=30)
        detected_at = ErrorRateAbove(threshold=0.05, for_seconds=10).wait(load, timeout=60)

Nothing here imports locust: the locustfiles (declared, recorder) run in locust's process.
"""

from gameday.load.baseline import Baseline, BaselineNotClean, capture_baseline
from gameday.load.generator import LoadGenerator, check_locustfile
from gameday.load.profile import LoadProfile, ReleaseReader, RequestSpec
from gameday.load.records import EndpointRecords, RequestRecord
from gameday.load.signals import GoldenSignals, golden_signals
from gameday.load.triggers import (
    AllOf,
    ErrorRateAbove,
    ErrorRateAtMost,
    ErrorRateBelow,
    LatencyAbove,
    LatencyAtMost,
    LatencyBelow,
    TriggerTimeout,
    VersionShare,
    trigger_from_data,
)

__all__ = [
    "AllOf",
    "Baseline",
    "BaselineNotClean",
    "EndpointRecords",
    "ErrorRateAbove",
    "ErrorRateAtMost",
    "ErrorRateBelow",
    "GoldenSignals",
    "LatencyAbove",
    "LatencyAtMost",
    "LatencyBelow",
    "LoadGenerator",
    "LoadProfile",
    "ReleaseReader",
    "RequestRecord",
    "RequestSpec",
    "TriggerTimeout",
    "VersionShare",
    "capture_baseline",
    "check_locustfile",
    "golden_signals",
    "trigger_from_data",
]
