"""Provider selection: explicit config, else Docker-backed when a daemon answers, else local."""

from __future__ import annotations

import shutil

import pytest

from gameday.cluster.docker import K3sCluster
from gameday.database.container import PostgresContainerDatabase
from gameday.errors import ConfigError, EnvironmentNotReady
from gameday.providers import Choice, DockerStatus, choose, docker_status

UP = lambda: DockerStatus(True, "Docker daemon answers")  # noqa: E731
DOWN = lambda: DockerStatus(False, "no Docker daemon answers at unix:///var/run/docker.sock")  # noqa: E731


@pytest.fixture(autouse=True)
def _no_env_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GAMEDAY_DATABASE", "GAMEDAY_CLUSTER", "GAMEDAY_AWS"):
        monkeypatch.delenv(name, raising=False)


def test_docker_backed_when_a_daemon_answers() -> None:
    assert choose("database", docker=UP).name == "container"
    assert choose("cluster", docker=UP).name == "k3s"


def test_local_default_without_a_daemon_says_why() -> None:
    choice = choose("database", docker=DOWN)
    assert choice.name == "local" and "no Docker daemon" in choice.reason
    assert choose("cluster", docker=DOWN).name == "local"
    assert choose("aws", docker=DOWN).name == "moto"


def test_explicit_choice_wins_over_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose("database", "local", docker=UP) == Choice("database", "local", "explicit")
    monkeypatch.setenv("GAMEDAY_CLUSTER", "kubeconfig")
    assert choose("cluster", docker=UP).name == "kubeconfig"
    monkeypatch.setenv("GAMEDAY_CLUSTER", "auto")
    assert choose("cluster", docker=UP).name == "k3s"


def test_explicit_docker_provider_without_daemon_is_one_clear_line() -> None:
    with pytest.raises(EnvironmentNotReady) as caught:
        choose("database", "container", docker=DOWN)
    line = caught.value.one_line()
    assert "\n" not in line and "needs Docker" in line and "GAMEDAY_DATABASE=local" in line


def test_unknown_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEDAY_AWS", "localstack")
    with pytest.raises(ConfigError, match="aws provider 'localstack' is unknown"):
        choose("aws")


def test_chosen_classes_load() -> None:
    assert choose("database", "container", docker=UP).load() is PostgresContainerDatabase
    assert choose("cluster", "k3s", docker=UP).load() is K3sCluster


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
def test_this_machine_has_the_docker_cli_but_no_engine() -> None:
    status = docker_status(timeout=1)
    if status:
        pytest.skip("a Docker daemon answers here")
    assert "docker CLI is installed but no engine is running" in status.detail
    for provider in (PostgresContainerDatabase(), K3sCluster()):
        with pytest.raises(EnvironmentNotReady) as caught:
            provider.start()
        assert "\n" not in caught.value.one_line() and "no Docker daemon answers" in caught.value.one_line()
        provider.stop()  # idempotent after a failed start


@pytest.mark.skipif(docker_status(timeout=1).answers, reason="a Docker daemon answers here")
def test_daemon_gone_between_check_and_start_is_still_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import gameday.providers

    monkeypatch.setattr(gameday.providers, "docker_status", lambda timeout=2.0: DockerStatus(True, "answers"))
    for provider in (PostgresContainerDatabase(), K3sCluster()):
        with pytest.raises(EnvironmentNotReady) as caught:
            provider.start()
        assert "\n" not in caught.value.one_line() and "did not start" in caught.value.one_line()
        provider.stop()
