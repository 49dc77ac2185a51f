"""Bad input, as a corpus: every case is refused before anything starts.

Each case is a command line with the files and GAMEDAY_* settings it needs.  `gameday`
must answer with exit 2, no traceback, one line (what was wrong, naming the input, and
the fix in parentheses), and must change nothing: the working folder is byte for byte
what it was (no reports/ folder, no file rewritten).  Cases that need a running
PostgreSQL server or cluster to be refused are tested elsewhere; a rollback state file
(`gameday aws check-state`) is the thing that command verifies, so a bad one is a failed
check (exit 1), not bad input, and is not here either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gameday.settings import SETTINGS

# -- the files cases are made of -------------------------------------------------------------------
OK_STEP = 'Given the service "demo" runs release "1.0.0" with 3 replicas'


def feature(*steps: str, table: str = "") -> str:
    body = "".join(f"    {s}\n" for s in steps)
    return f"Feature: bad input\n  Scenario: one\n{body}{table}"


def targets(*rows: str) -> str:
    return feature(OK_STEP, "Then time to rollback meets the runbook's targets:",
                   table="".join(f"      {r}\n" for r in rows))


OK_FEATURE = feature(OK_STEP)

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
        - {name: app, image: "shop/cart:4.2.0", ports: [{containerPort: 7000}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart}
spec:
  selector: {app: cart}
  ports: [{port: 80, targetPort: 7000}]
"""

PROJECT = """\
namespace: shop
services:
  cart:
    manifests: k8s/
    endpoints: {health: /healthz}
    release: {header: X-Version}
    load:
      users: 3
      requests:
        - {path: /api/cart, weight: 3, expect: [200]}
images:
  - repository: shop/cart
    command: ["{python}", "{dir}/cart.py"]
    port: 7000
    tags: {"4.2.0": {env: {VERSION: "4.2.0"}}}
"""

CART_FEATURE = feature('Given the service "cart" runs release "4.2.0" with 2 replicas')

CATALOG = """\
images:
  - repository: gameday/demo
    command: ["{python}", "-m", "gameday.demo"]
    port: 8080
    tags:
      "1.0.0": {env: {DEMO_VERSION: "1.0.0"}}
"""

RUNBOOK = "# Rollback\n\n## Roll back\n\n```bash\nkubectl rollout undo deployment/demo -n production\n```\n"

JOURNAL = {
    "schema": "gameday.journal/1", "run_id": "r1", "status": "passed", "start": "2026-01-01T00:00:00.000+00:00",
    "end": "2026-01-01T00:00:01.000+00:00", "environment": {},
    "scenarios": [{"name": "one", "feature": "f", "tags": [], "test_id": "t", "start": "2026-01-01T00:00:00.000+00:00",
                   "end": "2026-01-01T00:00:01.000+00:00", "duration_s": 1.0, "status": "passed", "error": None,
                   "measurements": [], "events": [], "steps": []}],
    "run": {"name": "run", "start": "2026-01-01T00:00:00.000+00:00", "end": None, "duration_s": None,
            "status": "running", "error": None, "measurements": [], "events": []},
}
JOURNAL_TEXT = json.dumps(JOURNAL, indent=2)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    needle: str  # what the one line must say: the input's name
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    never: str = ""  # what must never be printed (a password)


def case(id: str, *args: str, needle: str, files: dict[str, str | bytes] | None = None,
         env: dict[str, str] | None = None, never: str = "") -> Case:
    return Case(id, args, needle, dict(files or {}), dict(env or {}), never)


def with_project(text: str = PROJECT, **more: str | bytes) -> dict[str, str | bytes]:
    return {"gameday.yaml": text, "k8s/cart.yaml": MANIFEST, "f.feature": CART_FEATURE, **more}


# -- features -------------------------------------------------------------------------------------------
FEATURES = [
    case("feature-endpoint-not-a-route", "run", "f.feature", needle="endpoint 'orders' is not an HTTP method",
         files={"f.feature": feature('Then "orders" fails at most 1% of its requests for 3 seconds')}),
    case("feature-endpoint-unknown-method", "run", "f.feature", needle="endpoint 'FETCH /api/orders' is not",
         files={"f.feature": feature('Then "FETCH /api/orders" fails more than 50% of its requests for 3 seconds')}),
    case("feature-empty", "run", "f.feature", needle="f.feature is empty", files={"f.feature": ""}),
    case("feature-blank", "run", "f.feature", needle="f.feature is empty", files={"f.feature": "  \n\n\t\n"}),
    case("feature-only-comments", "run", "f.feature", needle="f.feature is empty",
         files={"f.feature": "# a game day, one day\n# maybe\n"}),
    case("feature-no-scenarios", "run", "f.feature", needle="f.feature has no scenarios",
         files={"f.feature": "Feature: nothing yet\n  We will write it later.\n"}),
    case("feature-background-only", "run", "f.feature", needle="f.feature has no scenarios",
         files={"f.feature": f"Feature: x\n  Background:\n    {OK_STEP}\n"}),
    case("feature-no-feature-line", "run", "f.feature", needle="malformed feature",
         files={"f.feature": f"Scenario: y\n  {OK_STEP}\n"}),
    case("feature-bad-gherkin", "run", "f.feature", needle="f.feature:4",
         files={"f.feature": f"Feature: x\n  Scenario: y\n    {OK_STEP}\n  Oops this is not gherkin\n"}),
    case("feature-latin1", "run", "f.feature", needle="not UTF-8", files={"f.feature": "Feature: café\n".encode("latin-1")}),
    case("feature-binary", "run", "f.feature", needle="f.feature is a binary file",
         files={"f.feature": b"\x00\x01\x02Feature: x\n"}),
    case("feature-scenario-without-steps", "run", "f.feature", needle="f.feature:2: scenario 'one' has no steps",
         files={"f.feature": "Feature: x\n  Scenario: one\n"}),
    case("feature-unknown-step", "run", "f.feature", needle="no step definition matches",
         files={"f.feature": feature(OK_STEP, "When the moon turns blue")}),
    case("feature-given-written-as-then", "run", "f.feature", needle="no step definition matches",
         files={"f.feature": feature("Then the orders database of the demo service with 5 orders")}),
    case("feature-negative-orders", "run", "f.feature", needle="count -5",
         files={"f.feature": feature("Given the orders database of the demo service with -5 orders")}),
    case("feature-negative-late-orders", "run", "f.feature", needle="count -250",
         files={"f.feature": feature("Given the orders database of the demo service with 5 orders",
                                     "And -250 more orders are written after the snapshot")}),
    case("feature-negative-rows", "run", "f.feature", needle="rows -1",
         files={"f.feature": feature('Then table "orders" has -1 rows')}),
    case("feature-negative-replicas", "run", "f.feature", needle="replicas -3",
         files={"f.feature": feature('Given the service "demo" runs release "1.0.0" with -3 replicas')}),
    case("feature-negative-users", "run", "f.feature", needle="users -4",
         files={"f.feature": feature(OK_STEP, "And steady traffic from -4 users")}),
    case("feature-negative-requests", "run", "f.feature", needle="count -50",
         files={"f.feature": feature(OK_STEP, 'Then the last -50 requests were served by release "1.0.0"')}),
    case("feature-negative-revision", "run", "f.feature", needle="revision -1",
         files={"f.feature": feature(OK_STEP, 'When the on-call engineer undoes the rollout of deployment "demo" '
                                              "to revision -1")}),
    case("feature-nan-percent", "run", "f.feature", needle="percent nan",
         files={"f.feature": feature(OK_STEP, "Then the error rate stays below nan% for 30 seconds")}),
    case("feature-inf-ms", "run", "f.feature", needle="ms inf",
         files={"f.feature": feature(OK_STEP, "Then p99 latency stays below inf ms for 30 seconds")}),
    case("feature-negative-percent", "run", "f.feature", needle="percent -0.5",
         files={"f.feature": feature(OK_STEP, "Then the error rate stays below -0.5% for 30 seconds")}),
    case("feature-canary-weight-over-100", "run", "f.feature", needle="percent 120",
         files={"f.feature": feature(OK_STEP, 'When the on-call engineer sets the canary weight of service "demo" '
                                              "to 120%")}),
    case("flag-not-a-configmap-key", "run", "f.feature", needle="f.feature:4: feature flag 'new pricing!' is not a ConfigMap key",
         files={"f.feature": feature(OK_STEP, 'And feature flag "new pricing!" of service "demo" is on')}),
    case("flag-kill-switch-not-a-configmap-key", "run", "f.feature", needle="feature flag '..pricing' is not a ConfigMap key",
         files={"f.feature": feature(OK_STEP, 'When the on-call engineer turns feature flag "..pricing" of service '
                                              '"demo" off')}),
    case("automatic-rules-unknown", "run", "f.feature", needle="f.feature:4: the rules table, row 2: unknown rule 'cpu above'",
         files={"f.feature": feature(OK_STEP, 'And the service "demo" rolls back automatically by undoing the rollout '
                                              "when one of these rules holds:",
                                     table="      | rule | threshold | for |\n      | cpu above | 90 % | 1 min |\n")}),
    case("automatic-health-rule-not-a-percentage", "run", "f.feature",
         needle="threshold 'most' for 'health checks failing above' is not a percentage",
         files={"f.feature": feature(OK_STEP, 'And the service "demo" rolls back automatically by undoing the rollout '
                                              "when one of these rules holds:",
                                     table="      | rule | threshold | for |\n"
                                           "      | health checks failing above | most | 1 min |\n")}),
    case("automatic-action-unknown", "run", "f.feature", needle="'paging someone' is not an action gameday knows",
         files={"f.feature": feature(OK_STEP, 'And the service "demo" rolls back automatically by paging someone '
                                              "when one of these rules holds:",
                                     table="      | rule | threshold | for |\n      | error rate above | 5 % | 1 min |\n")}),
    case("criteria-unknown", "run", "f.feature", needle="f.feature:4: the criteria table, row 2: 'cpu' with bound",
         files={"f.feature": feature(OK_STEP, "Then the runbook's success criteria hold for 10 seconds:",
                                     table="      | criterion | bound |\n      | cpu | < 90 % |\n")}),
    case("targets-header-only", "run", "f.feature", needle="the targets table has only its header",
         files={"f.feature": targets("| phase | target |")}),
    case("targets-nan", "run", "f.feature", needle="target 'nan s' for phase 'act'",
         files={"f.feature": targets("| phase | target |", "| act | nan s |")}),
    case("targets-negative", "run", "f.feature", needle="target '-5 s' for phase 'act'",
         files={"f.feature": targets("| phase | target |", "| act | -5 s |")}),
    case("targets-inf", "run", "f.feature", needle="target 'inf s' for phase 'total'",
         files={"f.feature": targets("| phase | target |", "| total | inf s |")}),
    case("targets-zero", "run", "f.feature", needle="target '0 s' for phase 'detect'",
         files={"f.feature": targets("| phase | target |", "| detect | 0 s |")}),
    case("targets-unknown-phase", "run", "f.feature", needle="unknown rollback phase 'deploy'",
         files={"f.feature": targets("| phase | target |", "| deploy | 90 s |")}),
    case("targets-unknown-unit", "run", "f.feature", needle="target '90 parsecs' for phase 'act'",
         files={"f.feature": targets("| phase | target |", "| act | 90 parsecs |")}),
    case("targets-no-header", "run", "f.feature", needle="must start with the header row | phase | target |",
         files={"f.feature": targets("| act | 90 s |", "| total | 240 s |")}),
    case("targets-phase-twice", "run", "f.feature", needle="gives phase act more than once",
         files={"f.feature": targets("| phase | target |", "| act | 90 s |", "| act | 60 s |")}),
    case("targets-ragged-row", "run", "f.feature", needle="f.feature:6: (6:7): inconsistent cell count",
         files={"f.feature": targets("| phase | target |", "| act |")}),
    case("targets-table-missing", "run", "f.feature", needle="needs a table under it",
         files={"f.feature": feature(OK_STEP, "Then time to rollback meets the runbook's targets:")}),
    case("drift-table-missing", "run", "f.feature", needle="needs a table under it",
         files={"f.feature": feature(OK_STEP, 'When runbook "r.md" is checked against the rehearsal',
                                     "Then the runbook check lists exactly this drift:"), "r.md": RUNBOOK}),
    case("feature-unknown-service", "run", "f.feature", needle="service 'checkout' is not in",
         files={"f.feature": feature('Given the service "checkout" runs release "1.0.0" with 3 replicas')}),
    case("feature-unknown-release", "run", "f.feature", needle="gameday/demo:9.9.9",
         files={"f.feature": feature('Given the service "demo" runs release "9.9.9" with 3 replicas')}),
    case("feature-unknown-release-to-break", "run", "f.feature", needle="gameday/demo:9.9.9",
         files={"f.feature": feature(OK_STEP, 'And release "9.9.9" can no longer start')}),
    case("feature-unknown-deployment", "run", "f.feature", needle="deployment 'web' is not a Deployment",
         files={"f.feature": feature(OK_STEP, 'When the on-call engineer undoes the rollout of deployment "web"')}),
    case("feature-bad-fault", "run", "f.feature", needle="error-rate=2",
         files={"f.feature": feature(OK_STEP, 'When release "1.0.0" of deployment "demo" is rolled out with the '
                                              'fault "error-rate=2"')}),
    case("feature-unknown-fault", "run", "f.feature", needle="explode",
         files={"f.feature": feature(OK_STEP, 'When release "1.0.0" of deployment "demo" is rolled out with the '
                                              'fault "explode"')}),
    case("feature-outline-without-rows", "run", "f.feature", needle="has no example rows",
         files={"f.feature": "Feature: x\n  Scenario Outline: o\n"
                             '    Given the service "demo" runs release "<r>" with 3 replicas\n'
                             "    Examples:\n      | r |\n"}),
    case("feature-outline-bad-second-row", "run", "f.feature", needle="replicas -1",
         files={"f.feature": "Feature: x\n  Scenario Outline: o\n"
                             '    Given the service "demo" runs release "1.0.0" with <n> replicas\n'
                             "    Examples:\n      | n |\n      | 2 |\n      | -1 |\n"}),
    case("feature-missing-runbook-section", "run", "f.feature", needle="Nope",
         files={"f.feature": feature(OK_STEP, 'When the on-call engineer follows section "Nope" of runbook "r.md"'),
                "r.md": RUNBOOK}),
    case("feature-path-missing", "run", "absent.feature", needle="feature path absent.feature does not exist"),
    case("feature-folder-empty", "run", "features", needle="no .feature files under features",
         files={"features/README.md": "later"}),
]

# -- `gameday run` options --------------------------------------------------------------------------------
RUN_OPTIONS = [
    case("history-not-sqlite", "run", "f.feature", needle="history store notes.txt is not a gameday history",
         env={"GAMEDAY_HISTORY": "notes.txt"}, files={"f.feature": OK_FEATURE, "notes.txt": "hello, not a database"}),
    case("history-dsn-unreachable", "run", "f.feature", files={"f.feature": OK_FEATURE},
         env={"GAMEDAY_HISTORY": "postgresql://gd:hunter2@127.0.0.1:1/gameday"},
         needle="history store postgresql://gd:***@127.0.0.1:1/gameday: cannot connect", never="hunter2"),
    case("history-command-dsn-unreachable", "history", env={"GAMEDAY_HISTORY": "postgresql://gd:hunter2@127.0.0.1:1/gameday"},
         needle="history store postgresql://gd:***@127.0.0.1:1/gameday: cannot connect", never="hunter2"),
    case("setting-history-dsn-bad-port", "run", "absent.feature",
         env={"GAMEDAY_HISTORY": "postgresql://gd:hunter2@db:notaport/gameday"},
         needle="GAMEDAY_HISTORY=postgresql://gd:***@db:notaport/gameday", never="hunter2"),
    case("setting-history-other-scheme", "run", "absent.feature", env={"GAMEDAY_HISTORY": "mysql://db/gameday"},
         needle="not a file path or a postgresql:// URL"),
    case("setting-history-key-value", "run", "absent.feature", env={"GAMEDAY_HISTORY": "host=db dbname=gameday"},
         needle="a key=value connection string"),
    case("history-html-folder-missing", "history", "--html", "nowhere/t.html", needle="--html nowhere/t.html: folder"),
    case("history-html-under-a-file", "history", "--html", "notes.txt/t.html", needle="notes.txt is a file, not a folder",
         files={"notes.txt": "x"}),
    case("history-html-a-folder", "history", "--html", "out", needle="--html", files={"out/.keep": ""}),
    case("history-command-without-runs", "history", "--reports", "out", needle="no game-day history at out"),
    case("history-is-a-folder", "run", "f.feature", needle="history store hist is not a file",
         env={"GAMEDAY_HISTORY": "hist"}, files={"f.feature": OK_FEATURE, "hist/.keep": ""}),
    case("reports-is-a-file", "run", "f.feature", "--reports", "out.txt", needle="--reports out.txt is a file",
         files={"f.feature": OK_FEATURE, "out.txt": "notes"}),
    case("reports-under-a-file", "run", "f.feature", "--reports", "out.txt/sub", needle="out.txt is a file",
         files={"f.feature": OK_FEATURE, "out.txt": "notes"}),
    case("reports-setting-is-a-file", "run", "f.feature", needle="GAMEDAY_REPORTS=out.txt",
         files={"f.feature": OK_FEATURE, "out.txt": "notes"}, env={"GAMEDAY_REPORTS": "out.txt"}),
    case("default-reports-is-a-file", "run", "f.feature", needle="reports is a file",
         files={"f.feature": OK_FEATURE, "reports": "not a folder"}),
    case("run-id-parent", "run", "f.feature", "--run-id", "../x", needle="--run-id '../x' is not a name",
         files={"f.feature": OK_FEATURE}),
    case("run-id-slash", "run", "f.feature", "--run-id", "a/b", needle="--run-id 'a/b' is not a name",
         files={"f.feature": OK_FEATURE}),
    case("run-id-dots", "run", "f.feature", "--run-id", "..", needle="--run-id '..' is not a name",
         files={"f.feature": OK_FEATURE}),
    case("run-id-empty", "run", "f.feature", "--run-id", "", needle="--run-id '' is not a name",
         files={"f.feature": OK_FEATURE}),
    case("run-id-taken", "run", "f.feature", "--run-id", "r1", needle="--run-id r1",
         files={"f.feature": OK_FEATURE, "reports/r1/journal.json": JOURNAL_TEXT}),
    case("steps-no-such-module", "run", "f.feature", "--steps", "no.such.module", needle="step module no.such.module",
         files={"f.feature": OK_FEATURE}),
    case("steps-no-such-submodule", "run", "f.feature", "--steps", "os.nosuch", needle="step module os.nosuch",
         files={"f.feature": OK_FEATURE}),
    case("steps-missing-file", "run", "f.feature", "--steps", "mine.py", needle="step module mine.py does not exist",
         files={"f.feature": OK_FEATURE}),
    case("steps-syntax-error", "run", "f.feature", "--steps", "mine.py", needle="mine.py:2 does not import",
         files={"f.feature": OK_FEATURE, "mine.py": "import os\ndef oops(:\n"}),
    case("steps-raise-at-import", "run", "f.feature", "--steps", "mine.py", needle="mine.py does not import",
         files={"f.feature": OK_FEATURE, "mine.py": "raise RuntimeError('no database in CI')\n"}),
    case("steps-exit-at-import", "run", "f.feature", "--steps", "mine.py", needle="mine.py does not import: SystemExit",
         files={"f.feature": OK_FEATURE, "mine.py": "import sys\nsys.exit(0)\n"}),
    case("run-unknown-option", "run", "--rpeorts", "x", needle="--rpeorts"),
    case("run-option-without-value", "run", "--reports", needle="--reports"),
    case("unknown-command", "rnu", needle="rnu"),
]

# -- project files -----------------------------------------------------------------------------------------
PROJECTS = [
    case("project-not-yaml", "run", "f.feature", needle="gameday.yaml:2 is not valid YAML",
         files=with_project("services: [\n")),
    case("project-empty", "run", "f.feature", needle="must be a mapping with a services: key",
         files=with_project("")),
    case("project-a-list", "run", "f.feature", needle="must be a mapping", files=with_project("- cart\n")),
    case("project-latin1", "run", "f.feature", needle="not UTF-8",
         files=with_project(("# café\n" + PROJECT).encode("latin-1"))),
    case("project-unknown-top-key", "run", "f.feature", needle="unknown key servces",
         files=with_project(PROJECT.replace("services:", "servces:"))),
    case("project-unknown-load-key", "run", "f.feature", needle="unknown key services.cart.load.usres",
         files=with_project(PROJECT.replace("users: 3", "usres: 3"))),
    case("project-users-not-a-number", "run", "f.feature", needle="services.cart.load.users",
         files=with_project(PROJECT.replace("users: 3", "users: many"))),
    case("project-users-negative", "run", "f.feature", needle="services.cart.load.users",
         files=with_project(PROJECT.replace("users: 3", "users: -1"))),
    case("project-rate-negative", "run", "f.feature", needle="services.cart.load.rate",
         files=with_project(PROJECT.replace("users: 3", "users: 3\n      rate: -1"))),
    case("project-no-services", "run", "f.feature", needle="services",
         files=with_project("namespace: shop\nservices: {}\n")),
    case("project-port-out-of-range", "run", "f.feature", needle="services.cart.service.port",
         files=with_project(PROJECT.replace("endpoints:", "service: {port: 70000}\n    endpoints:"))),
    case("project-manifests-missing", "run", "f.feature", needle="services.cart.manifests: deploy/ does not exist",
         files=with_project(PROJECT.replace("manifests: k8s/", "manifests: deploy/"))),
    case("project-database-env-not-a-variable", "run", "f.feature", needle="services.cart.database.env",
         files=with_project(PROJECT.replace("endpoints:", "database: {env: DATABASE URL}\n    endpoints:"))),
    case("project-service-without-database-given-one", "run", "f.feature",
         needle="does not say the variable its database URL goes in",
         files=with_project(**{"f.feature": feature('Given the service "cart" keeps its data in a rehearsal database '
                                                    'at migration 0001 with 10 rows per table')})),
    case("project-manifests-and-kustomize", "run", "f.feature", needle="give exactly one of manifests",
         files=with_project(PROJECT.replace("manifests: k8s/", "manifests: k8s/\n    kustomize: k8s/"))),
    case("project-locustfile-missing", "run", "f.feature", needle="load.locustfile: load.py does not exist",
         files=with_project(PROJECT.replace("      requests:\n        - {path: /api/cart, weight: 3, expect: [200]}\n",
                                            "      locustfile: load.py\n"))),
    case("project-steps-missing", "run", "f.feature", needle="steps: ours.py does not exist",
         files=with_project(PROJECT + "steps: [ours.py]\n")),
    case("project-namespace-not-a-name", "run", "f.feature", needle="is not a Kubernetes name",
         files=with_project(PROJECT.replace("namespace: shop", "namespace: Shop_1"))),
    case("project-default-service-unknown", "run", "f.feature", needle="default-service 'checkout'",
         files=with_project(PROJECT + "default-service: checkout\n")),
    case("project-release-neither", "run", "f.feature", needle="give exactly one of header",
         files=with_project(PROJECT.replace("release: {header: X-Version}", "release: {}"))),
    case("project-endpoint-not-a-path", "run", "f.feature", needle="'healthz' is not a path",
         files=with_project(PROJECT.replace("/healthz", "healthz"))),
    case("project-status-not-http", "run", "f.feature", needle="are not HTTP statuses",
         files=with_project(PROJECT.replace("expect: [200]", "expect: [700]"))),
    case("project-url-not-a-url", "run", "f.feature", needle="services.cart.url: 'localhost:8080' is not an http(s) URL",
         files=with_project(PROJECT.replace("    endpoints:", "    url: localhost:8080\n    endpoints:"))),
    case("project-runbook-unknown-key", "run", "f.feature", needle="unknown key runbook.namespace",
         files=with_project(PROJECT + "runbook: {namespace: {production: shop}}\n")),
    case("project-migrations-folder-missing", "run", "f.feature",
         needle="migrations.script-location: migrations/ does not exist",
         files=with_project(PROJECT + "migrations: {script-location: migrations/}\n")),
    case("project-base-sql-missing", "run", "f.feature", needle="migrations.base-sql: schema.sql does not exist",
         files=with_project(PROJECT + "migrations: {base-sql: schema.sql}\n")),
    case("project-base-not-a-function", "run", "f.feature", needle="migrations.base: 'myapp' is not module:function",
         files=with_project(PROJECT + "migrations: {base: myapp}\n")),
    case("project-image-port-not-a-number", "run", "f.feature", needle="images.0.port",
         files=with_project(PROJECT.replace("port: 7000", "port: abc"))),
    case("project-image-without-command", "run", "f.feature", needle="images.0.command is missing",
         files=with_project(PROJECT.replace('    command: ["{python}", "{dir}/cart.py"]\n', ""))),
    case("project-image-misspelt-key", "run", "f.feature", needle="unknown key images.0.comand",
         files=with_project(PROJECT.replace("command:", "comand:"))),
    case("project-image-command-a-string", "run", "f.feature", needle="images.0.command",
         files=with_project(PROJECT.replace('["{python}", "{dir}/cart.py"]', '"python cart.py"'))),
    case("project-image-bad-fault", "run", "f.feature", needle="error-rate=2",
         files=with_project(PROJECT.replace('{env: {VERSION: "4.2.0"}}', '{fault: "error-rate=2"}'))),
    case("project-feature-unknown-release", "run", "f.feature", needle="shop/cart:9.9.9",
         files={**with_project(), "f.feature": feature('Given the service "cart" runs release "9.9.9" with 2 replicas')}),
    case("project-manifest-without-deployment", "run", "f.feature", needle="no Deployment named 'cart'",
         files={**with_project(), "k8s/cart.yaml": MANIFEST.replace("name: cart}", "name: carts}", 1)}),
    case("project-manifest-not-yaml", "run", "f.feature", needle="does not parse",
         files={**with_project(), "k8s/cart.yaml": "spec:\n  replicas: [\n"}),
    case("config-missing", "run", "f.feature", "--config", "missing.yaml",
         needle="project file missing.yaml does not exist", files={"f.feature": OK_FEATURE}),
    case("config-setting-missing", "run", "f.feature", needle="GAMEDAY_CONFIG=missing.yaml",
         files={"f.feature": OK_FEATURE}, env={"GAMEDAY_CONFIG": "missing.yaml"}),
]

# -- settings: every one that takes a number, with text and below its range; the others with a wrong choice or path
NUMERIC = [s for s in SETTINGS.values() if s.kind in ("int", "number")]
SETTING_CASES = [
    case(f"setting-{s.name}-{label}", "run", "absent.feature", needle=f"{s.env}={value}: {expected}",
         env={s.env: value})
    for s in NUMERIC
    for label, value, expected in (("text", "abc", "not a"), ("negative", "-1", "below"))
] + [
    case("setting-load-max-seconds-nan", "run", "absent.feature", needle="GAMEDAY_LOAD_MAX_SECONDS=nan",
         env={"GAMEDAY_LOAD_MAX_SECONDS": "nan"}),
    case("setting-load-max-seconds-too-long", "run", "absent.feature", needle="GAMEDAY_LOAD_MAX_SECONDS=1e9: above",
         env={"GAMEDAY_LOAD_MAX_SECONDS": "1e9"}),
    case("setting-dump-jobs-fraction", "run", "absent.feature", needle="GAMEDAY_DUMP_JOBS=2.5: not a whole number",
         env={"GAMEDAY_DUMP_JOBS": "2.5"}),
    case("setting-dump-jobs-zero", "run", "absent.feature", needle="GAMEDAY_DUMP_JOBS=0: below 1",
         env={"GAMEDAY_DUMP_JOBS": "0"}),
    case("kubeconfig-missing", "run", "f.feature", needle="kubeconfig missing.yaml does not exist",
         files={"f.feature": feature(OK_STEP)}, env={"GAMEDAY_CLUSTER": "kubeconfig", "GAMEDAY_KUBECONFIG": "missing.yaml"}),
    case("kubeconfig-not-yaml", "run", "f.feature", needle="is not a kubeconfig",
         files={"f.feature": feature(OK_STEP), "kc": "clusters: [unclosed\n"},
         env={"GAMEDAY_CLUSTER": "kubeconfig", "GAMEDAY_KUBECONFIG": "kc"}),
    case("kubeconfig-no-server", "run", "f.feature", needle="names no API server",
         files={"f.feature": feature(OK_STEP), "kc": "apiVersion: v1\nkind: Config\n"},
         env={"GAMEDAY_CLUSTER": "kubeconfig", "GAMEDAY_KUBECONFIG": "kc"}),
    case("kubeconfig-unreachable", "run", "f.feature", needle="is unreachable",
         files={"f.feature": feature(OK_STEP), "kc": "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
                "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"},
         env={"GAMEDAY_CLUSTER": "kubeconfig", "GAMEDAY_KUBECONFIG": "kc"}),
    case("setting-cluster-bogus", "run", "absent.feature", needle="GAMEDAY_CLUSTER=bogus", env={"GAMEDAY_CLUSTER": "bogus"}),
    case("setting-database-bogus", "run", "absent.feature", needle="GAMEDAY_DATABASE=mysql",
         env={"GAMEDAY_DATABASE": "mysql"}),
    case("setting-aws-bogus", "run", "absent.feature", needle="GAMEDAY_AWS=azure", env={"GAMEDAY_AWS": "azure"}),
    case("setting-dump-format", "run", "absent.feature", needle="GAMEDAY_DUMP_FORMAT=zip", env={"GAMEDAY_DUMP_FORMAT": "zip"}),
    case("setting-metrics-server-yes", "run", "absent.feature", needle="GAMEDAY_METRICS_SERVER=yes",
         env={"GAMEDAY_METRICS_SERVER": "yes"}),
    case("setting-allow-non-rehearsal-true", "run", "absent.feature", needle="GAMEDAY_ALLOW_NON_REHEARSAL=true",
         env={"GAMEDAY_ALLOW_NON_REHEARSAL": "true"}),
    case("setting-cache-missing", "run", "absent.feature", needle="GAMEDAY_CACHE=no-cache: no such folder",
         env={"GAMEDAY_CACHE": "no-cache"}),
    case("setting-cache-a-file", "run", "absent.feature", needle="GAMEDAY_CACHE=cache.txt: is a file",
         files={"cache.txt": "x"}, env={"GAMEDAY_CACHE": "cache.txt"}),
    case("setting-pg-bindir-missing", "run", "absent.feature", needle="GAMEDAY_PG_BINDIR=/no/pg/bin",
         env={"GAMEDAY_PG_BINDIR": "/no/pg/bin"}),
    case("setting-pg-user-missing", "run", "absent.feature", needle="GAMEDAY_PG_USER=no-such-user-here",
         env={"GAMEDAY_PG_USER": "no-such-user-here"}),
    case("setting-images-missing", "run", "absent.feature", needle="GAMEDAY_IMAGES=extra.yaml",
         env={"GAMEDAY_IMAGES": "extra.yaml"}),
    case("setting-aws-region", "run", "absent.feature", needle="GAMEDAY_AWS_REGION=mars", env={"GAMEDAY_AWS_REGION": "mars"}),
    case("setting-dsn-garbage", "run", "absent.feature", needle="GAMEDAY_DSN=", env={"GAMEDAY_DSN": "host=h port"}),
    case("setting-dsn-password-kept-out", "run", "absent.feature", needle="GAMEDAY_DSN=",
         env={"GAMEDAY_DSN": "postgresql://app:hunter2@db:notaport/app"}, never="hunter2"),
    # checked before any command starts, not only `gameday run`
    case("setting-seed-rows-migrations", "db", "migrations", "check", needle="GAMEDAY_MIGRATIONS_SEED_ROWS=abc",
         env={"GAMEDAY_MIGRATIONS_SEED_ROWS": "abc"}),
    case("setting-dump-jobs-verify-backup", "db", "verify-backup", "--dsn", "postgresql://u@127.0.0.1:1/app",
         needle="GAMEDAY_DUMP_JOBS=-3", env={"GAMEDAY_DUMP_JOBS": "-3"}),
    case("setting-cluster-runbook", "runbook", "check", "r.md", needle="GAMEDAY_CLUSTER=bogus",
         files={"r.md": RUNBOOK}, env={"GAMEDAY_CLUSTER": "bogus"}),
    case("setting-cache-cluster-status", "cluster", "status", needle="GAMEDAY_CACHE=no-cache",
         env={"GAMEDAY_CACHE": "no-cache"}),
]

# -- DSNs and backups (`gameday db ...`: refused before anything connects) ---------------------------------------------
SOURCE = "postgresql://app@127.0.0.1:1/app"
DATABASES = [
    case("dsn-garbage", "db", "verify-backup", "--dsn", "host=h port", needle="is not a valid connection string"),
    case("dsn-bad-port", "db", "verify-backup", "--dsn", "postgresql://u@h:99999/app", needle="invalid host or port"),
    case("dsn-port-not-a-number", "db", "verify-backup", "--dsn", "host=h port=abc dbname=x",
         needle="DSN port 'abc' is not a number"),
    case("dsn-password-kept-out", "db", "verify-backup", "--dsn", "postgresql://app:hunter2@h:notaport/app",
         needle="invalid host or port", never="hunter2"),
    case("dsn-no-database", "db", "verify-backup", "--dsn", "postgresql://127.0.0.1:5432/", needle="no database named"),
    case("dsn-none", "db", "verify-backup", needle="no database named in --dsn or PGDATABASE"),
    case("verify-backup-physical-no-owner", "db", "verify-backup", "--dsn", "postgresql://u@127.0.0.1:1/app",
         "--method", "physical", "--no-owner", needle="--method physical copies the whole server"),
    case("verify-backup-method-unknown", "db", "verify-backup", "--method", "rsync", needle="--method"),
    case("dsn-snapshot-garbage", "db", "snapshot", "--dsn", "host=h port", "--release", "1",
         needle="is not a valid connection string"),
    case("dsn-migrations-garbage", "db", "migrations", "check", "--dsn", "host=h port",
         needle="is not a valid connection string"),
    case("dsn-downgrade-garbage", "db", "migrations", "downgrade", "--dsn", "host=h port",
         needle="is not a valid connection string"),
    case("backup-missing", "db", "verify-backup", "--dsn", SOURCE, "--backup", "nightly.pgdump",
         needle="backup nightly.pgdump not found"),
    case("backup-empty", "db", "verify-backup", "--dsn", SOURCE, "--backup", "nightly.pgdump",
         needle="backup nightly.pgdump is empty", files={"nightly.pgdump": b""}),
    case("backup-plain-sql", "db", "verify-backup", "--dsn", SOURCE, "--backup", "nightly.sql",
         needle="is a plain SQL script", files={"nightly.sql": "--\n-- PostgreSQL database dump\n--\nSET x = 1;\n"}),
    case("backup-gzip", "db", "verify-backup", "--dsn", SOURCE, "--backup", "nightly.gz",
         needle="is gzip-compressed", files={"nightly.gz": b"\x1f\x8b\x08\x00rest"}),
    case("backup-not-an-archive", "db", "verify-backup", "--dsn", SOURCE, "--backup", "nightly.pgdump",
         needle="is not a pg_dump archive", files={"nightly.pgdump": b"hello, not a dump"}),
    case("backup-folder-without-toc", "db", "verify-backup", "--dsn", SOURCE, "--backup", "dump",
         needle="is a folder without toc.dat", files={"dump/notes.txt": "x"}),
    case("backup-manifest-not-json", "db", "verify-backup", "--dsn", SOURCE, "--backup", "snap",
         needle="snap/gameday-snapshot.json is not a snapshot manifest gameday can read",
         files={"snap/gameday-snapshot.json": "{not json", "snap/dump.pgdump": b"PGDMP"}),
    case("backup-manifest-without-dump", "db", "verify-backup", "--dsn", SOURCE, "--backup", "snap",
         needle="can read (no 'dump')", files={"snap/gameday-snapshot.json": '{"release": "1.0.0"}'}),
    case("backup-manifest-unknown-checksum", "db", "verify-backup", "--dsn", SOURCE, "--backup", "snap",
         needle="unknown checksum algorithm 'sha9'", files={"snap/gameday-snapshot.json": (
             '{"dump": "dump.pgdump", "release": "1.0.0", "format": "custom", "size_bytes": 5, "duration_s": 1,'
             ' "taken_at": "2026-01-01T00:00:00+00:00", "source": "x", "state": {"taken_at": "2026-01-01T00:00:00+00:00",'
             ' "algorithm": "sha9", "tables": {}}}')}),
    case("backup-globals-missing", "db", "verify-backup", "--dsn", SOURCE, "--globals", "roles.sql",
         needle="--globals roles.sql not found"),
    case("backup-globals-and-no-owner", "db", "verify-backup", "--dsn", SOURCE, "--globals", "roles.sql", "--no-owner",
         needle="--globals and --no-owner exclude each other", files={"roles.sql": "CREATE ROLE app;\n"}),
    case("backup-expect-no-rows", "db", "verify-backup", "--dsn", SOURCE, "--expect", "orders",
         needle="--expect 'orders' is not TABLE=ROWS"),
    case("backup-expect-negative", "db", "verify-backup", "--dsn", SOURCE, "--expect", "orders=-5",
         needle="--expect 'orders=-5'"),
    case("backup-expect-no-table", "db", "verify-backup", "--dsn", SOURCE, "--expect", "=5", needle="--expect '=5'"),
    case("backup-time-column-no-column", "db", "verify-backup", "--dsn", SOURCE, "--time-column", "orders",
         needle="--time-column 'orders' is not TABLE.COLUMN"),
    case("backup-time-column-no-table", "db", "verify-backup", "--dsn", SOURCE, "--time-column", ".created_at",
         needle="--time-column '.created_at'"),
    case("backup-time-column-twice", "db", "verify-backup", "--dsn", SOURCE, "--time-column", "orders.created_at",
         "--time-column", "orders.paid_at", needle="--time-column gives table orders twice"),
]

# -- migration folders ---------------------------------------------------------------------------------------
MIGRATIONS = [
    case("migrations-folder-missing", "db", "migrations", "check", "--script-location", "alembic",
         needle="alembic folder alembic does not exist"),
    case("migrations-no-env-py", "db", "migrations", "check", "--script-location", "alembic",
         needle="alembic folder alembic has no env.py", files={"alembic/versions/.keep": ""}),
    case("migrations-garbage-ini", "db", "migrations", "check", "--script-location", "alembic.ini",
         needle="alembic.ini is not a valid ini file", files={"alembic.ini": "[alembic\nscript_location = x\n"}),
    case("migrations-not-an-ini", "db", "migrations", "check", "--script-location", "notes.txt",
         needle="notes.txt is a file, not an alembic folder or alembic.ini", files={"notes.txt": "hello"}),
    case("migrations-base-sql-missing", "db", "migrations", "check", "--script-location", "alembic",
         "--base-sql", "schema.sql", needle="--base-sql schema.sql does not exist",
         files={"alembic/env.py": "", "alembic/versions/.keep": ""}),
    case("migrations-config-missing", "db", "migrations", "check", "--config", "missing.yaml",
         needle="project file missing.yaml does not exist"),
    case("migrations-project-folder-missing", "db", "migrations", "check",
         needle="migrations.script-location: db/migrations does not exist",
         files=with_project(PROJECT + "migrations: {script-location: db/migrations}\n")),
    case("migrations-rows-not-a-number", "db", "migrations", "check", "--rows", "many", needle="--rows"),
    case("migrations-rows-negative", "db", "migrations", "check", "--rows", "-5", needle="--rows"),
    case("migrations-rows-zero", "db", "migrations", "check", "--rows", "0", needle="--rows"),
    case("migrations-base-not-a-function", "db", "migrations", "check", "--script-location", "alembic",
         "--base", "nocolon", needle="--base 'nocolon' is not module:function",
         files={"alembic/env.py": "", "alembic/versions/.keep": ""}),
    case("ecs-rollback-tasks-negative", "aws", "ecs-rollback", "--tasks", "-1", needle="--tasks"),
    case("ecs-rollback-interval-zero", "aws", "ecs-rollback", "--interval", "0", needle="--interval"),
    case("runbook-reports-is-a-file", "runbook", "check", "r.md", "--reports", "out.txt",
         needle="--reports out.txt is a file", files={"r.md": "# Rollback\n\n1. `kubectl get pods`\n", "out.txt": "x"}),
    case("verify-backup-reports-is-a-file", "db", "verify-backup", "--dsn", "postgresql://u@127.0.0.1:1/app",
         "--reports", "out.txt", needle="--reports out.txt is a file", files={"out.txt": "x"}),
]

# -- runbooks -----------------------------------------------------------------------------------------------
RUNBOOKS = [
    case("runbook-missing", "runbook", "check", "r.md", needle="runbook r.md does not exist"),
    case("runbook-empty", "runbook", "check", "r.md", needle="runbook r.md is empty", files={"r.md": ""}),
    case("runbook-blank", "runbook", "check", "r.md", needle="runbook r.md is empty", files={"r.md": "\n  \n"}),
    case("runbook-binary", "runbook", "check", "r.md", needle="runbook r.md is a binary file",
         files={"r.md": b"\x00\x01\xff\xfe"}),
    case("runbook-list-binary", "runbook", "check", "r.md", "--list", needle="runbook r.md is a binary file",
         files={"r.md": b"\x89PNG\r\n\x1a\n\x00\x00"}),
    case("runbook-unknown-section", "runbook", "check", "r.md", "--section", "Nope",
         needle="'Nope' is not a section of runbook r.md", files={"r.md": RUNBOOK}),
    case("runbook-set-no-value", "runbook", "check", "r.md", "--set", "revision", needle="--set 'revision' is not name=value",
         files={"r.md": RUNBOOK}),
    case("runbook-set-no-name", "runbook", "check", "r.md", "--set", "=3", needle="--set '=3' is not name=value",
         files={"r.md": RUNBOOK}),
    case("runbook-set-twice", "runbook", "check", "r.md", "--set", "a=1", "--set", "a=2",
         needle="placeholder a is bound twice differently", files={"r.md": RUNBOOK}),
    case("runbook-bindings-missing", "runbook", "check", "r.md", "--bindings", "b.yaml",
         needle="bindings file b.yaml does not exist", files={"r.md": RUNBOOK}),
    case("runbook-bindings-not-yaml", "runbook", "check", "r.md", "--bindings", "b.yaml",
         needle="bindings file b.yaml line 2 is not valid YAML", files={"r.md": RUNBOOK, "b.yaml": "set: [\n"}),
    case("runbook-bindings-unknown-key", "runbook", "check", "r.md", "--bindings", "b.yaml",
         needle="bindings file b.yaml: sett", files={"r.md": RUNBOOK, "b.yaml": "sett: {}\n"}),
    case("runbook-bindings-set-a-list", "runbook", "check", "r.md", "--bindings", "b.yaml",
         needle="bindings file b.yaml", files={"r.md": RUNBOOK, "b.yaml": "set: [a, b]\n"}),
    case("runbook-step-timeout-zero", "runbook", "check", "r.md", "--step-timeout", "0", needle="--step-timeout",
         files={"r.md": RUNBOOK}),
    case("runbook-sleep-scale-two", "runbook", "check", "r.md", "--sleep-scale", "2", needle="--sleep-scale",
         files={"r.md": RUNBOOK}),
    case("runbook-max-age-zero", "runbook", "check", "r.md", "--max-age", "0", needle="--max-age",
         files={"r.md": RUNBOOK}),
    case("runbook-workdir-a-file", "runbook", "check", "r.md", "--workdir", "r.md", needle="--workdir",
         files={"r.md": RUNBOOK}),
    case("runbook-config-missing", "runbook", "check", "r.md", "--config", "missing.yaml",
         needle="project file missing.yaml does not exist", files={"r.md": RUNBOOK}),
    case("runbook-run-id-a-path", "runbook", "check", "r.md", "--run-id", "../x", needle="'../x' is not a name",
         files={"r.md": RUNBOOK}),
]

# -- image catalogs (--images, GAMEDAY_IMAGES) --------------------------------------------------------------------------------
IMAGE_CATALOGS = [
    case("images-missing", "run", "f.feature", "--images", "extra.yaml", needle="image catalog extra.yaml not found",
         files={"f.feature": OK_FEATURE}),
    case("images-not-yaml", "run", "f.feature", "--images", "extra.yaml", needle="extra.yaml:2 is not valid YAML",
         files={"f.feature": OK_FEATURE, "extra.yaml": "images: [\n  - {\n"}),
    case("images-empty", "run", "f.feature", "--images", "extra.yaml", needle="needs a top-level 'images:' list",
         files={"f.feature": OK_FEATURE, "extra.yaml": ""}),
    case("images-no-images-key", "run", "f.feature", "--images", "extra.yaml", needle="needs a top-level 'images:' list",
         files={"f.feature": OK_FEATURE, "extra.yaml": "repository: gameday/demo\n"}),
    case("images-a-mapping", "run", "f.feature", "--images", "extra.yaml", needle="needs a top-level 'images:' list",
         files={"f.feature": OK_FEATURE, "extra.yaml": "images: {gameday/demo: {}}\n"}),
    case("images-no-command", "run", "f.feature", "--images", "extra.yaml", needle="images.0.command is missing",
         files={"f.feature": OK_FEATURE, "extra.yaml": "images:\n  - repository: gameday/demo\n"}),
    case("images-command-a-string", "run", "f.feature", "--images", "extra.yaml", needle="images.0.command",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace('["{python}", "-m", "gameday.demo"]', "python app.py")}),
    case("images-command-empty", "run", "f.feature", "--images", "extra.yaml", needle="images.0.command",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace('["{python}", "-m", "gameday.demo"]', "[]")}),
    case("images-port-not-a-number", "run", "f.feature", "--images", "extra.yaml", needle="extra.yaml: images.0.port",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace("port: 8080", "port: http")}),
    case("images-port-zero", "run", "f.feature", "--images", "extra.yaml", needle="images.0.port",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace("port: 8080", "port: 0")}),
    case("images-tags-a-list", "run", "f.feature", "--images", "extra.yaml", needle="images.0.tags",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace(
             '    tags:\n      "1.0.0": {env: {DEMO_VERSION: "1.0.0"}}\n', "    tags: [1.0.0]\n")}),
    case("images-tag-env-a-list", "run", "f.feature", "--images", "extra.yaml", needle="images.0.tags.1.0.0.env",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace('{env: {DEMO_VERSION: "1.0.0"}}', "{env: [a]}")}),
    case("images-misspelt-key", "run", "f.feature", "--images", "extra.yaml", needle="unknown key images.0.evn",
         files={"f.feature": OK_FEATURE, "extra.yaml": CATALOG.replace("port: 8080", "port: 8080\n    evn: {A: b}")}),
    case("images-bad-fault", "run", "f.feature", "--images", "extra.yaml", needle="error-rate=2",
         files={"f.feature": OK_FEATURE,
                "extra.yaml": CATALOG.replace('{env: {DEMO_VERSION: "1.0.0"}}', '{fault: "error-rate=2"}')}),
    case("images-unknown-fault", "run", "f.feature", "--images", "extra.yaml", needle="explode",
         files={"f.feature": OK_FEATURE,
                "extra.yaml": CATALOG.replace('{env: {DEMO_VERSION: "1.0.0"}}', '{fault: "explode"}')}),
    case("images-setting-not-yaml", "run", "f.feature", needle="extra.yaml:2 is not valid YAML",
         files={"f.feature": OK_FEATURE, "extra.yaml": "images: [\n  - {\n"}, env={"GAMEDAY_IMAGES": "extra.yaml"}),
    case("images-cluster-up", "cluster", "up", "--images", "extra.yaml", needle="extra.yaml: images.0.port",
         files={"extra.yaml": CATALOG.replace("port: 8080", "port: http")}),
    case("images-aws-moto-missing", "aws", "moto", "--images", "extra.yaml", needle="--images"),
]

# -- `gameday report` --------------------------------------------------------------------------------------------
REPORTS = [
    case("report-folder-missing", "report", "reports/r1", needle="reports/r1"),
    case("report-folder-a-file", "report", "r1.txt", needle="r1.txt", files={"r1.txt": "x"}),
    case("report-no-journal", "report", "r1", needle="r1 has no journal.json", files={"r1/summary.md": "# old"}),
    case("report-journal-empty", "report", "r1", needle="journal.json is empty", files={"r1/journal.json": ""}),
    case("report-journal-corrupt", "report", "r1", needle="journal.json is not valid JSON",
         files={"r1/journal.json": "{\n  'run_id': r1"}),
    case("report-journal-truncated", "report", "r1", needle="journal.json is not valid JSON",
         files={"r1/journal.json": JOURNAL_TEXT[: len(JOURNAL_TEXT) // 2]}),
    case("report-journal-a-list", "report", "r1", needle="journal.json is not a gameday journal",
         files={"r1/journal.json": "[]"}),
    case("report-journal-other-schema", "report", "r1", needle="journal.json is not a gameday journal",
         files={"r1/journal.json": json.dumps({**JOURNAL, "schema": "junit/2"})}),
    case("report-journal-no-scenarios", "report", "r1", needle="scenarios is missing",
         files={"r1/journal.json": json.dumps({k: v for k, v in JOURNAL.items() if k != "scenarios"})}),
    case("report-journal-scenario-without-steps", "report", "r1", needle="scenarios[0].steps is missing",
         files={"r1/journal.json": json.dumps({**JOURNAL, "scenarios": [
             {k: v for k, v in JOURNAL["scenarios"][0].items() if k != "steps"}]})}),
    case("report-journal-measurement-text", "report", "r1", needle="scenarios[0].measurements[0].value is str",
         files={"r1/journal.json": json.dumps({**JOURNAL, "scenarios": [
             {**JOURNAL["scenarios"][0], "measurements": [{"name": "act", "value": "fast"}]}]})}),
    case("report-journal-latin1", "report", "r1", needle="journal.json is not UTF-8",
         files={"r1/journal.json": '{"run_id": "café"}'.encode("latin-1")}),
    case("report-journal-a-folder", "report", "r1", needle="journal.json cannot be read",
         files={"r1/journal.json/.keep": ""}),
]

# -- other commands -----------------------------------------------------------------------------------------------
OTHERS = [
    case("cluster-name-a-path", "cluster", "--name", "../x", "down", needle="cluster name '../x' is not a name"),
    case("cluster-nodes-negative", "cluster", "up", "--nodes", "-1", needle="--nodes"),
    case("cluster-version-bad", "cluster", "build", "--version", "1.34", needle="Kubernetes version '1.34'"),
    case("init-two-release-sources", "init", "--command", "{python} app.py", "--release-header", "X-V",
         "--release-json", "v", needle="say how a response names the release"),
    case("init-users-zero", "init", "--command", "{python} app.py", "--release-header", "X-V", "--users", "0",
         needle="--users"),
    case("init-manifests-missing", "init", "--command", "{python} app.py", "--release-header", "X-V",
         "--manifests", "nowhere", needle="nowhere"),
    case("steps-command-no-such-module", "steps", "--steps", "no.such.module", needle="step module no.such.module"),
    case("ecs-rollback-unknown-service", "aws", "ecs-rollback", "--service", "nosuch", needle="service 'nosuch'"),
    case("docker-image-no-daemon", "docker", "image", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
         needle="no Docker daemon answers at unix:///nonexistent/docker.sock"),
    case("container-database-no-daemon", "run", "f.feature", files={"f.feature": feature("Given the orders database of the demo service with 100 orders")},
         env={"GAMEDAY_DATABASE": "container", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
         needle="no Docker daemon answers at unix:///nonexistent/docker.sock"),
]

CORPUS = [*FEATURES, *RUN_OPTIONS, *PROJECTS, *SETTING_CASES, *DATABASES, *MIGRATIONS, *RUNBOOKS, *IMAGE_CATALOGS,
          *REPORTS, *OTHERS]


def test_the_corpus_is_large_and_each_case_named_once():
    assert len(CORPUS) >= 120
    ids = [c.id for c in CORPUS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def _tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "PG"))}
    # the embedded cluster (no Docker probe), so a release the image catalog cannot run is caught
    env.update(GAMEDAY_CLUSTER="local", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@pytest.mark.parametrize("bad", CORPUS, ids=[c.id for c in CORPUS])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(bad: Case, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    for name, content in bad.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = _tree(work)
    done = subprocess.run([sys.executable, "-m", "gameday.cli", *bad.args], cwd=work, env=_environment(bad.env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert done.returncode == 2, output
    assert len(lines) == 1, output
    line = lines[0]
    assert bad.needle in line, line
    assert line.startswith("error: ") and line.rstrip().endswith(")"), f"no fix in parentheses: {line}"
    if bad.never:
        assert bad.never not in output
    assert _tree(work) == before, "bad input changed the working folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"], "bad input wrote beside the working folder"


# -- refused by asking the source, before the snapshot: a real (throwaway) PostgreSQL ----------------------------------
@pytest.fixture(scope="module")
def orders_source():
    from gameday.database.local import LocalPostgres
    from gameday.database.seed import seed_orders

    with LocalPostgres("bad-input-source") as db:
        seed_orders(db.dsn, 10)
        with __import__("psycopg").connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE audit (id serial PRIMARY KEY, at timestamp NOT NULL DEFAULT now())")
        yield db


@pytest.mark.postgres
@pytest.mark.parametrize(("column", "needle"), [
    ("orders.nosuchcol", "--time-column orders.nosuchcol: table public.orders has no column 'nosuchcol'"),
    ("orders.amount_cents", "--time-column orders.amount_cents is integer, not timestamp with time zone"),
    ("audit.at", "--time-column audit.at is timestamp without time zone"),
    ("nosuchtable.created_at", "the source has no table public.nosuchtable"),
])
def test_a_wrong_time_column_is_refused_before_the_snapshot(orders_source, column, needle, tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "db", "verify-backup", "--dsn", orders_source.dsn,
                           "--time-column", column], cwd=tmp_path, env=_environment({}), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in output, output
    assert len(lines) == 1 and needle in lines[0], output
    assert list(tmp_path.iterdir()) == []  # no snapshot, no reports


@pytest.mark.postgres
def test_a_timestamptz_time_column_passes_the_check_and_the_gate(orders_source, tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "gameday.cli", "db", "verify-backup", "--dsn", orders_source.dsn,
                           "--time-column", "public.orders.created_at", "--expect", "orders=10",
                           "--reports", str(tmp_path / "reports")], cwd=tmp_path, env=_environment({}),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data lost since snapshot (RPO): 0 rows" in done.stdout
