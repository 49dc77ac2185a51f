"""Fixtures of the AWS tests: one moto server (with the task runner) for the module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday import project
from gameday.aws.moto_server import MotoServer
from gameday.journal import Journal
from gameday.procedures.ecs_rollback import EcsRollbackRehearsal, EcsService
from gameday.project import demo_project_file

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test-only catalog, with the throwaway app's absolute path filled in."""
    text = (HERE / "images.yaml").read_text().replace("tests/aws/webapp.py", str(HERE / "webapp.py"))
    path = tmp_path_factory.mktemp("catalog") / "images.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def moto(test_images: Path) -> Iterator[MotoServer]:
    with MotoServer(images=[test_images]) as server:
        yield server


@pytest.fixture
def fresh_journal() -> Journal:
    return Journal()


def quick_service(repository: str | None = None, tasks: int = 3) -> EcsService:
    """The demo project's service on its own cluster, with 1 s health checks so tests stay short."""
    unique = uuid.uuid4().hex[:8]
    overrides = {"repository": repository} if repository else {}
    return EcsService.of(
        project.load(demo_project_file()).service(), name="orders", cluster=f"test-{unique}", family=f"orders-{unique}",
        tasks=tasks, health_interval_s=1, health_retries=2, stable_timeout_s=60, **overrides,
    )


@pytest.fixture
def make_service():  # type: ignore[no-untyped-def]
    return quick_service


@pytest.fixture
def rehearsal(moto: MotoServer, tmp_path: Path, fresh_journal: Journal) -> EcsRollbackRehearsal:
    return EcsRollbackRehearsal(moto, quick_service(), tmp_path, fresh_journal)


def pytest_configure(config: pytest.Config) -> None:
    # feature tags become markers; --strict-markers needs them registered (also asked of pyproject)
    for name, text in (("aws", "AWS rehearsals (moto)"), ("ecs", "ECS rollback"), ("rds", "RDS snapshots"),
                       ("database", "needs a database")):
        config.addinivalue_line("markers", f"{name}: {text}")
