"""Drift: what in a runbook no longer matches the system, each finding naming its line.

Found three ways: before anything runs (a script path that is missing, a placeholder
nothing binds, a "Last Updated" too old), from what the rehearsal answered when a step
ran (a namespace, Deployment, Service, revision or ECS cluster that does not exist, a
flag the installed tool rejects, a CLI that is not installed, a host no map covers), and
from the clock (a section slower than its own stated target).

The answers are read from each tool's own error text; the patterns are data below.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gameday.runbook.execute import Call, StepResult


@dataclass(frozen=True)
class Finding:
    kind: str
    line: int
    message: str
    section: str = ""

    @property
    def drift(self) -> bool:
        """Drift means the runbook is out of date; a failure or a refusal is reported, not drift."""
        return self.kind in DRIFT_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "message": self.message, "section": self.section,
                "drift": self.drift}


DRIFT_KINDS = frozenset({"missing-object", "missing-cli", "missing-script", "missing-file", "rejected-flag",
                         "unbound-placeholder", "unmapped-host", "target-missed", "stale"})

_RESOURCE_WORDS = {"deployments": "deployment", "namespaces": "namespace", "services": "service", "pods": "pod",
                   "replicasets": "replicaset", "ingresses": "ingress", "endpoints": "endpoints",
                   "virtualservices": "virtualservice", "configmaps": "configmap", "secrets": "secret",
                   "statefulsets": "statefulset", "daemonsets": "daemonset", "nodes": "node", "jobs": "job"}


def _resource(word: str) -> str:
    plural = word.split(".", 1)[0]
    return _RESOURCE_WORDS.get(plural, plural.rstrip("s"))


# (tool, pattern, kind, message from the match)
Rule = tuple[str, re.Pattern[str], str, Callable[[re.Match[str]], str]]
RULES: list[Rule] = [
    ("kubectl", re.compile(r'\(NotFound\): (\S+?) "([^"]+)" not found'), "missing-object",
     lambda m: f"{_resource(m.group(1))} {m.group(2)} does not exist"),
    ("kubectl", re.compile(r'\b([a-z]+(?:\.[a-z0-9.]+)?) "([^"]+)" not found'), "missing-object",
     lambda m: f"{_resource(m.group(1))} {m.group(2)} does not exist"),
    ("kubectl", re.compile(r"unable to find (?:the )?specified revision (\d+)"), "missing-object",
     lambda m: f"revision {m.group(1)} does not exist in the rollout history"),
    ("kubectl", re.compile(r'the server doesn\'t have a resource type "([^"]+)"'), "missing-object",
     lambda m: f"resource type {m.group(1)} is not served by the cluster (a CRD or API missing)"),
    ("kubectl", re.compile(r"unknown (?:shorthand )?flag: ('?[^'\s]+'?(?: in [^\s]+)?)"), "rejected-flag",
     lambda m: f"kubectl rejects the flag {m.group(1)}"),
    ("kubectl", re.compile(r'error: unknown command "([^"]+)"'), "rejected-flag",
     lambda m: f"kubectl has no command {m.group(1)}"),
    ("aws", re.compile(r"\((ClusterNotFoundException)\).*?: (.+)"), "missing-object",
     lambda m: f"ECS cluster does not exist ({m.group(2).strip()})"),
    ("aws", re.compile(r"\((ServiceNotFoundException|ServiceNotActiveException)\).*?: (.+)"), "missing-object",
     lambda m: f"ECS service does not exist ({m.group(2).strip()})"),
    ("aws", re.compile(r"\((\w*NotFound\w*)\) when calling the (\w+) operation: (.+)"), "missing-object",
     lambda m: f"{m.group(3).strip()} ({m.group(2)})"),
    ("aws", re.compile(r"(?:Unknown options|unrecognized arguments): (.+)"), "rejected-flag",
     lambda m: f"aws rejects {m.group(1).strip()}"),
    ("pg_restore", re.compile(r'could not open input file "([^"]+)"'), "missing-file",
     lambda m: f"backup file {m.group(1)} does not exist"),
    ("psql", re.compile(r'(?:relation|table|column|role|database) "([^"]+)" does not exist'), "missing-object",
     lambda m: m.group(0)),
    ("psql", re.compile(r'(?:psql: )?error: (\S+): No such file or directory'), "missing-file",
     lambda m: f"file {m.group(1)} does not exist"),
    ("alembic", re.compile(r"(No config file '[^']+' found|Can't locate revision identified by '[^']+')"),
     "missing-object", lambda m: m.group(1)),
]


def call_findings(call: Call, section: str) -> list[Finding]:
    """What one wrapped CLI call says about the runbook."""
    if call.outcome == "missing-cli":
        return [Finding("missing-cli", call.line, f"{call.tool} is not installed: the runbook needs it", section)]
    if call.outcome == "not-rehearsable":
        kind = "unmapped-host" if call.reason.startswith("host ") else "not-rehearsable"
        return [Finding(kind, call.line, f"`{_short(call.command)}` not rehearsable: {call.reason}", section)]
    if call.exit == 0:
        return []
    tool = "psql" if call.tool in ("pg_dump",) else call.tool
    for rule_tool, pattern, kind, message in RULES:
        if rule_tool == tool:
            match = pattern.search(call.stderr)
            if match:
                return [Finding(kind, call.line, message(match), section)]
    if call.tool == "sleep":
        return []
    first = next((line.strip() for line in call.stderr.splitlines() if line.strip()), f"exit code {call.exit}")
    return [Finding("failed", call.line, f"`{_short(call.command)}` failed: {first[:200]}", section)]


def result_findings(result: StepResult, section: str) -> list[Finding]:
    findings = [f for call in result.calls for f in call_findings(call, section)]
    wrapped_lines = {c.line for c in result.calls}
    for failure in result.failures:
        if failure.line in wrapped_lines:
            continue  # the wrapped call already said why
        if failure.exit == 127:
            findings.append(Finding("missing-cli", failure.line,
                                    f"`{_short(failure.command)}`: command not found", section))
        else:
            findings.append(Finding("failed", failure.line,
                                    f"`{_short(failure.command)}` exited {failure.exit}", section))
    if result.status == "timeout":
        findings.append(Finding("failed", 0, f"step {result.reason}", section))
    return _unique(findings)


def missing_scripts(commands: Iterable[Any], cwd: Path, section: str) -> list[Finding]:
    """Script paths (``./scripts/rollback.sh``) that are not in the team's repository."""
    findings = []
    for command in commands:
        if command.cli != "script":
            continue
        path = command.program
        if "$" in path:
            continue
        if not (cwd / path).exists() and not Path(path).is_absolute():
            findings.append(Finding("missing-script", command.line, f"script {path} does not exist", section))
    return findings


def stale(last_updated: date | None, line: int | None, max_age_days: int | None, today: date) -> Finding | None:
    if last_updated is None or max_age_days is None:
        return None
    age = (today - last_updated).days
    if age <= max_age_days:
        return None
    return Finding("stale", line or 0, f"Last Updated {last_updated.isoformat()} is {age} days old "
                   f"(more than {max_age_days})")


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[:limit - 1] + "…"


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, str]] = set()
    out = []
    for finding in findings:
        key = (finding.kind, finding.line, finding.message)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out
