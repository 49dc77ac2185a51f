"""Faults as data: break the pods of one release of any HTTP service, without its help.

A fault is text (``error-rate=0.5,latency-ms=400``) or a mapping
(``{error-rate: 0.5, crash-on-start: true}``) on an image catalog tag or in the
``gameday.io/fault`` pod annotation.  ``flag=NAME`` puts the error rate and latency behind a
feature flag: they apply only while the flag is on, read per request from the pod's
``gameday-flags`` volume (a ConfigMap with one key per flag, ``on`` or ``off``), so turning
the flag off is a kill switch that needs no redeploy.  ``wrap_command`` puts the fault wrapper
(``python -m gameday.faults``, see gameday.faults.wrapper) in front of the real command:
it proxies HTTP on $HOST:$PORT to the service and breaks what the fault says.

    fault = parse_fault("error-rate=0.5", where="images.yaml images[0] tag '1.1.0-bad'")
    argv = wrap_command(["node", "server.js"], fault, ready_path="/ready")
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from gameday.errors import ConfigError

FAULT_ANNOTATION = "gameday.io/fault"

FIX = "use error-rate=F, latency-ms=N, crash-on-start, never-ready, flag=NAME"
FLAGS_VOLUME = "gameday-flags"  # the pod volume holding the flags a flag= fault reads
FLAGS_MOUNT = "/etc/gameday/flags"
FLAG_ON = ("on", "true", "1", "yes", "enabled")
_FLAG_NAME = re.compile(r"[-._a-zA-Z0-9]+")  # a ConfigMap key
MAX_LATENCY_MS = 60_000


@dataclass(frozen=True)
class FaultSpec:
    """How one release misbehaves; falsy when it behaves."""

    error_rate: float = 0  # fraction 0..1 of requests answered 500
    latency_ms: int = 0  # added to every request
    crash_on_start: bool = False  # exit 1 at start: CrashLoopBackOff
    never_ready: bool = False  # the readiness path answers 503
    flag: str = ""  # error rate and latency only while this feature flag is on

    def __post_init__(self) -> None:
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate {self.error_rate} is outside 0..1")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms {self.latency_ms} is outside 0..{MAX_LATENCY_MS}")

    def describe(self) -> str:
        """The canonical text, which ``parse_fault`` reads back: ``"error-rate=0.5,never-ready"``."""
        parts = []
        if self.error_rate:
            rate = repr(float(self.error_rate))
            parts.append(f"error-rate={rate.removesuffix('.0')}")
        if self.latency_ms:
            parts.append(f"latency-ms={self.latency_ms}")
        if self.crash_on_start:
            parts.append("crash-on-start")
        if self.never_ready:
            parts.append("never-ready")
        if self.flag:
            parts.append(f"flag={self.flag}")
        return ",".join(parts)

    def __bool__(self) -> bool:
        return bool(self.describe())


class _Bad(ValueError):
    """One fault item is wrong; parse_fault turns it into a ConfigError naming ``where``."""


# A parser takes the item's value (text after '=', True for a bare name, or the YAML
# value) and returns the FaultSpec fields it sets.
Parser = Callable[[Any], dict[str, Any]]


def _error_rate(value: Any) -> dict[str, Any]:
    rate = _number("error-rate", value, "a fraction between 0 and 1, e.g. error-rate=0.5")
    if not 0 <= rate <= 1:
        raise _Bad(f"error-rate={value} is outside 0..1")
    return {"error_rate": rate}


def _latency_ms(value: Any) -> dict[str, Any]:
    hint = f"whole milliseconds from 0 to {MAX_LATENCY_MS}, e.g. latency-ms=400"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"latency-ms needs {hint} (got {_shown(value)})")
    if value > MAX_LATENCY_MS:
        raise _Bad(f"latency-ms={value} is too large (give {hint})")
    return {"latency_ms": value}


def _flag(name: str, attribute: str) -> Parser:
    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, bool):
            raise _Bad(f"{name} is a flag: write '{name}' alone, or '{name}: true' in a mapping "
                       f"(got {_shown(value)})")
        return {attribute: value}

    return parse


def _flag_name(value: Any) -> dict[str, Any]:
    if not isinstance(value, str) or not _FLAG_NAME.fullmatch(value.strip()):
        raise _Bad(f"flag needs the feature flag's name, e.g. flag=new-pricing (got {_shown(value)})")
    return {"flag": value.strip()}


def _number(name: str, value: Any, hint: str) -> float:
    if isinstance(value, bool):
        raise _Bad(f"{name} needs {hint} (got {_shown(value)})")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name} needs {hint} (got {_shown(value)})") from None


def _shown(value: Any) -> str:
    return "no value" if value is True else repr(value)


FAULTS: dict[str, Parser] = {
    "error-rate": _error_rate,
    "latency-ms": _latency_ms,
    "crash-on-start": _flag("crash-on-start", "crash_on_start"),
    "never-ready": _flag("never-ready", "never_ready"),
    "flag": _flag_name,
}


def parse_fault(value: str | dict | None, where: str) -> FaultSpec:
    """Text or mapping -> FaultSpec; raises ConfigError naming ``where`` and the bad item.

    ``None`` and ``""`` mean no fault.
    """
    if value is None or isinstance(value, FaultSpec):
        return value or FaultSpec()
    if isinstance(value, str):
        items = _text_items(value, where)
    elif isinstance(value, dict):
        items = [(str(name), item) for name, item in value.items()]
    else:
        raise ConfigError(f"{where} fault: must be text like 'error-rate=0.5' or a mapping, "
                          f"not {type(value).__name__}", fix=FIX)
    found: dict[str, Any] = {}
    for name, item in items:
        if name not in FAULTS:
            close = difflib.get_close_matches(name, list(FAULTS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where} fault: unknown fault {name!r}{hint}", fix=FIX)
        try:
            found.update(FAULTS[name](item))
        except _Bad as exc:
            raise ConfigError(f"{where} fault: {exc}", fix=FIX) from None
    return replace(FaultSpec(), **{f.name: found[f.name] for f in fields(FaultSpec) if f.name in found})


def _text_items(text: str, where: str) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, item = part.partition("=")
        name = name.strip()
        if name in (seen for seen, _ in items):
            raise ConfigError(f"{where} fault: {name!r} given twice", fix=FIX)
        items.append((name, item.strip() if sep else True))
    return items


def wrap_command(argv: list[str], fault: FaultSpec, *, ready_path: str | None = None,
                 live_path: str | None = None) -> list[str]:
    """The command that runs ``argv`` behind the fault wrapper, or ``argv`` when there is no fault.

    Requests to ``ready_path`` and ``live_path`` (the probe paths) get no error-rate or
    latency: a bad release still passes its probes.
    """
    if not fault:
        return list(argv)
    command = [sys.executable, "-m", "gameday.faults", "--fault", fault.describe()]
    if ready_path:
        command += ["--ready-path", ready_path]
    if live_path:
        command += ["--live-path", live_path]
    return [*command, "--", *argv]


__all__ = ["FAULT_ANNOTATION", "FLAGS_MOUNT", "FLAGS_VOLUME", "FaultSpec", "parse_fault", "wrap_command"]
