"""Time-to-rollback, split the way a post-mortem splits it.

    T0 bad deploy applied -> T_detect alarm rule held -> T_act rollback issued
    -> T_done rollout complete -> T_recover signals back at baseline, 100 % on stable

detect = T_detect - T0, decide = T_act - T_detect, act = T_done - T_act,
recover = T_recover - T_done, total = T_recover - T0.  Alarm windows may be compressed
(a 2-minute rule rehearsed in 10 s): ``scale`` records by how much, and every report
states it, because the detect and recover phases shrink with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gameday import durations
from gameday.errors import ConfigError, RehearsalFailed
from gameday.journal import Journal

PHASES = ("detect", "decide", "act", "recover", "total")
_BOUNDS = {"detect": ("t0", "detected"), "decide": ("detected", "acted"), "act": ("acted", "done"),
           "recover": ("done", "recovered"), "total": ("t0", "recovered")}


def targets_from_table(rows: list[list[str]]) -> dict[str, float]:
    """A Gherkin table ``| phase | target |`` (``| act | 90 s |``, ``| total | 5 min |``) as seconds."""
    targets: dict[str, float] = {}
    for row in rows[1:]:
        if len(row) < 2:
            raise ConfigError(f"targets row {row} needs a phase and a target", fix="e.g. | act | 90 s |")
        phase, text = row[0].strip(), row[1].strip()
        try:
            target = durations.seconds(text, bare=True)
        except ValueError:
            raise ConfigError(f"target {text!r} for phase {phase!r} is not a duration",
                              fix="write seconds or minutes, e.g. 90 s or 2 min") from None
        if phase not in PHASES:
            raise ConfigError(f"unknown rollback phase {phase!r}", fix=f"use one of: {', '.join(PHASES)}")
        targets[phase] = target
    return targets


@dataclass
class RollbackTimeline:
    scale: float = 1.0
    marks: dict[str, float] = field(default_factory=dict)  # epoch seconds
    recorded: bool = False  # the phases are in the journal already
    decided_by: str = "alarm to rollback command; no human is paged in a rehearsal"

    def mark(self, name: str, at: float | None = None) -> float:
        self.marks[name] = time.time() if at is None else at
        return self.marks[name]

    def phase(self, name: str) -> float | None:
        if name not in _BOUNDS:
            raise ConfigError(f"unknown rollback phase {name!r}", fix=f"use one of: {', '.join(PHASES)}")
        start, end = _BOUNDS[name]
        if start in self.marks and end in self.marks:
            return self.marks[end] - self.marks[start]
        return None

    def record(self, journal: Journal | None, targets: dict[str, float] | None = None) -> dict[str, float]:
        """Put every measured phase in the journal, with its target where one is given."""
        targets = targets or {}
        unknown = set(targets) - set(PHASES)
        if unknown:
            raise ConfigError(f"unknown rollback phase {', '.join(sorted(unknown))}", fix=f"use: {', '.join(PHASES)}")
        measured = {name: value for name in PHASES if (value := self.phase(name)) is not None}
        self.recorded = True
        if journal is not None:
            for name, value in measured.items():
                detail = f"alarm windows compressed {self.scale:g}x" if self.scale != 1 and name in ("detect", "recover", "total") else ""
                if name == "decide":
                    detail = self.decided_by
                journal.measure(f"time to {name}" if name != "total" else "time to rollback (total)", value, "s",
                                target=targets.get(name), detail=detail)
        return measured

    def check_targets(self, journal: Journal | None, targets: dict[str, float]) -> None:
        """Record every phase against ``targets``, then fail on any phase that missed its target."""
        self.record(journal, targets)
        self.require_within(targets)

    def require_within(self, targets: dict[str, float]) -> None:
        missing = [name for name in targets if self.phase(name) is None]
        if missing:
            raise RehearsalFailed(f"phase {', '.join(missing)} was not measured: the rehearsal did not get that far")
        missed = [f"{name} {self.phase(name):.1f} s > {limit:g} s" for name, limit in targets.items()
                  if (self.phase(name) or 0) > limit]
        if missed:
            raise RehearsalFailed("rollback missed the runbook's targets: " + "; ".join(missed))
