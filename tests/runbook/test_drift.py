"""What a tool's own error text says about the runbook: the drift rules, one case each."""

from __future__ import annotations

import pytest

from gameday.runbook.drift import call_findings, stale
from gameday.runbook.execute import Call

CASES = [
    ("kubectl", 'Error from server (NotFound): deployments.apps "api" not found', "missing-object",
     "deployment api does not exist"),
    ("kubectl", 'Error from server (NotFound): namespaces "staging" not found', "missing-object",
     "namespace staging does not exist"),
    ("kubectl", 'error: no objects passed to scale deployments.apps "api-green" not found', "missing-object",
     "deployment api-green does not exist"),
    ("kubectl", "error: unable to find specified revision 142 in history", "missing-object",
     "revision 142 does not exist in the rollout history"),
    ("kubectl", "error: unknown flag: --watch-timeout\nSee 'kubectl rollout status --help'", "rejected-flag",
     "kubectl rejects the flag --watch-timeout"),
    ("kubectl", 'error: the server doesn\'t have a resource type "virtualservice"', "missing-object",
     "resource type virtualservice is not served by the cluster (a CRD or API missing)"),
    ("aws", "An error occurred (ClusterNotFoundException) when calling the UpdateService operation: Cluster not found.",
     "missing-object", "ECS cluster does not exist (Cluster not found.)"),
    ("aws", "An error occurred (ServiceNotFoundException) when calling the UpdateService operation: Service not found.",
     "missing-object", "ECS service does not exist (Service not found.)"),
    ("pg_restore", 'pg_restore: error: could not open input file "pre-deploy.dump": No such file or directory',
     "missing-file", "backup file pre-deploy.dump does not exist"),
    ("psql", 'ERROR:  relation "schema_migrations" does not exist', "missing-object",
     'relation "schema_migrations" does not exist'),
    ("kubectl", "error: You must be logged in to the server (Unauthorized)", "failed",
     "`kubectl get pods` failed: error: You must be logged in to the server (Unauthorized)"),
]


@pytest.mark.parametrize("tool, stderr, kind, message", CASES)
def test_a_failed_call_is_read_from_the_tools_own_words(tool, stderr, kind, message):
    call = Call(line=12, tool=tool, argv=[tool, "get", "pods"] if tool == "kubectl" else [tool], outcome="ran",
                exit=1, duration_s=0.1, stderr=stderr)
    [finding] = call_findings(call, "Roll back")
    assert (finding.line, finding.kind, finding.message, finding.section) == (12, kind, message, "Roll back")
    assert finding.drift is (kind != "failed")


def test_refused_and_missing_calls():
    host = Call(line=3, tool="curl", argv=["curl", "https://x.example"], outcome="not-rehearsable", exit=3,
                duration_s=0, reason="host x.example is not mapped to a rehearsal address")
    context = Call(line=4, tool="kubectl", argv=["kubectl", "config", "use-context", "dr"], outcome="not-rehearsable",
                   exit=3, duration_s=0, reason="context 'dr' is not mapped to the rehearsal cluster")
    missing = Call(line=5, tool="argocd", argv=["argocd", "app", "rollback"], outcome="missing-cli", exit=127,
                   duration_s=0, reason="argocd is not installed")
    assert [(f.kind, f.drift) for c in (host, context, missing) for f in call_findings(c, "")] == [
        ("unmapped-host", True), ("not-rehearsable", False), ("missing-cli", True)]
    assert call_findings(Call(line=1, tool="kubectl", argv=["kubectl"], outcome="ran", exit=0, duration_s=0), "") == []


def test_last_updated_older_than_the_allowed_age():
    from datetime import date

    assert stale(date(2026, 1, 1), 7, 180, date(2026, 6, 29)) is None  # 179 days
    finding = stale(date(2026, 1, 1), 7, 180, date(2026, 7, 1))
    assert finding is not None and (finding.line, finding.kind) == (7, "stale") and "181 days old" in finding.message
