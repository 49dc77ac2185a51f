"""What each runbook CLI call is turned into, or refused: the wrappers' rewrite rules."""

from __future__ import annotations

import pytest

from gameday.runbook.shim import Missing, Refused, rewrite

TOOLS = {t: f"/real/{t}" for t in ("kubectl", "aws", "curl", "psql", "pg_restore", "sleep", "alembic", "argocd")}
CTX = {
    "tools": {**TOOLS, "helm": None, "terraform": None},
    "kubernetes": {"kubeconfig": "/r/kubeconfig", "namespaces": {"production": "shop", "shop": "shop"},
                   "default_namespace": "shop", "contexts": ["prod-eu"], "owns_cluster": False},
    "aws": {"endpoint": "http://127.0.0.1:5000", "env": {"AWS_ACCESS_KEY_ID": "x"}},
    "database": {"dsn": "postgresql://gd@127.0.0.1:5433/rehearsal"},
    "hosts": {"api.shop.example": "http://127.0.0.1:4100"},
    "sleep_scale": 0.1,
}


def argv(tool, *args, ctx=CTX):
    return rewrite(tool, list(args), ctx)[0]


def test_kubectl_gets_the_rehearsal_kubeconfig_and_mapped_namespace():
    assert argv("kubectl", "-n", "production", "rollout", "undo", "deployment/api") == [
        "/real/kubectl", "--kubeconfig", "/r/kubeconfig", "--namespace", "shop", "rollout", "undo", "deployment/api"]
    assert argv("kubectl", "get", "pods", "--namespace=production")[-2:] == ["--namespace", "shop"]
    # no namespace given: the rehearsal's default, never the caller's kubeconfig context
    assert argv("kubectl", "get", "pods")[1:5] == ["--kubeconfig", "/r/kubeconfig", "--namespace", "shop"]


def test_kubectl_refuses_what_would_leave_the_rehearsal():
    with pytest.raises(Refused, match="namespace 'payments' is not mapped"):
        rewrite("kubectl", ["-n", "payments", "get", "pods"], CTX)  # not our cluster: unmapped is refused
    with pytest.raises(Refused, match="--kubeconfig points kubectl at another cluster"):
        rewrite("kubectl", ["--kubeconfig", "/home/me/.kube/config", "get", "pods"], CTX)
    with pytest.raises(Refused, match="context 'dr-cluster' is not mapped"):
        rewrite("kubectl", ["config", "use-context", "dr-cluster"], CTX)
    assert argv("kubectl", "--context", "prod-eu", "get", "pods")[:3] == ["/real/kubectl", "--kubeconfig",
                                                                          "/r/kubeconfig"]


def test_kubectl_on_a_cluster_gameday_made_passes_unmapped_namespaces_through():
    owned = {**CTX, "kubernetes": {**CTX["kubernetes"], "owns_cluster": True}}
    assert argv("kubectl", "-n", "payments", "get", "pods", ctx=owned)[3:5] == ["--namespace", "payments"]


def test_kubectl_exec_without_a_terminal():
    run, _, notes = rewrite("kubectl", ["exec", "-it", "api-0", "--", "pg_isready"], CTX)
    assert "-i" in run and "-it" not in run and any("-t dropped" in n for n in notes)


def test_aws_goes_to_the_local_endpoint_with_throwaway_credentials():
    run, env, _ = rewrite("aws", ["ecs", "update-service", "--profile", "prod", "--cluster", "c"], CTX)
    assert run == ["/real/aws", "ecs", "update-service", "--cluster", "c", "--endpoint-url", "http://127.0.0.1:5000"]
    assert env == {"AWS_ACCESS_KEY_ID": "x"}
    with pytest.raises(Refused, match="no rehearsal AWS"):
        rewrite("aws", ["ecs", "list-clusters"], {**CTX, "aws": None})


def test_curl_through_the_host_map_and_nowhere_else():
    assert argv("curl", "-fsS", "https://api.shop.example/health?x=1") == [
        "/real/curl", "-fsS", "http://127.0.0.1:4100/health?x=1"]
    assert argv("curl", "http://127.0.0.1:9/ok")[-1] == "http://127.0.0.1:9/ok"  # loopback is ours already
    with pytest.raises(Refused, match="host metrics.shop.example is not mapped"):
        rewrite("curl", ["-s", "https://metrics.shop.example/api/v1/query"], CTX)


def test_postgres_tools_reach_only_the_rehearsal_database():
    run, _, notes = rewrite("psql", ["-h", "db.shop.example", "-U", "admin", "-d", "production", "-c", "SELECT 1"], CTX)
    assert run == ["/real/psql", "--dbname", "postgresql://gd@127.0.0.1:5433/rehearsal", "-c", "SELECT 1"]
    assert "db.shop.example" in notes[0]
    run, _, _ = rewrite("pg_restore", ["-h", "db", "-d", "prod", "-t", "orders", "backup.dump"], CTX)
    assert run[-3:] == ["-t", "orders", "backup.dump"] and "--dbname" in run
    _, env, _ = rewrite("alembic", ["downgrade", "-1"], CTX)
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://gd@127.0.0.1:5433/rehearsal")


def test_sleeps_scale_and_missing_clis_are_named():
    assert argv("sleep", "60") == ["/real/sleep", "6.000"]
    assert argv("sleep", "2m") == ["/real/sleep", "12.000"]
    with pytest.raises(Missing, match="terraform is not installed"):
        rewrite("terraform", ["apply"], CTX)
    with pytest.raises(Refused, match="argocd's targets"):
        rewrite("argocd", ["app", "rollback", "x"], CTX)
