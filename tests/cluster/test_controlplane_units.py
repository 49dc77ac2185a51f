"""Pieces of the local cluster that need no running control plane."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from gameday.cluster import build, certs, kubeconfig
from gameday.cluster.kubeconfig import KubeconfigCluster
from gameday.errors import ConfigError, EnvironmentNotReady


def test_pki_certificates_chain_to_the_ca(tmp_path: Path) -> None:
    pki = certs.generate(tmp_path)
    out = subprocess.run(["openssl", "verify", "-CAfile", str(pki.ca.cert), str(pki.apiserver.cert),
                          str(pki.admin.cert), str(pki.kubelet_client.cert)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(pki.admin.cert), "-noout", "-subject"],
                          capture_output=True, text=True).stdout
    assert "O = system:masters" in text
    assert oct(pki.service_account_key.stat().st_mode)[-3:] == "600"


def test_kubeconfig_embeds_credentials_and_names_the_server(tmp_path: Path) -> None:
    pki = certs.generate(tmp_path / "pki")
    path = kubeconfig.write(tmp_path / "config", "https://127.0.0.1:6443", pki.ca.cert, pki.admin)
    document = yaml.safe_load(path.read_text())
    assert document["users"][0]["user"]["client-key-data"]
    assert kubeconfig.server_of(path) == "https://127.0.0.1:6443"
    assert oct(path.stat().st_mode)[-3:] == "600"
    view = subprocess.run(["kubectl", "--kubeconfig", str(path), "config", "view", "-o",
                           "jsonpath={.clusters[0].cluster.server}"], capture_output=True, text=True, timeout=30)
    assert view.stdout == "https://127.0.0.1:6443", view.stderr


def test_missing_go_is_one_line_with_a_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setattr(build, "GO_FALLBACK", tmp_path / "no-go")
    with pytest.raises(EnvironmentNotReady) as caught:
        build.go_binary()
    assert "\n" not in caught.value.one_line() and "install Go" in caught.value.one_line()


def test_bad_version_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="v1.X.Y"):
        build.build("1.34")


def test_empty_cache_is_not_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAMEDAY_CACHE", str(tmp_path))
    assert not build.is_built()
    assert build.bin_dir() == tmp_path / "k8s" / build.pinned_version() / "bin"


def test_wrapper_module_replaces_every_staging_module() -> None:
    go_mod = (build.GOMOD / "kubernetes" / "go.mod").read_text()
    twin = "v0." + build.pinned_version().split(".", 1)[1]
    for module in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/kube-scheduler"):
        assert f"{module} => {module} {twin}" in go_mod


def test_kubeconfig_provider_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        KubeconfigCluster(tmp_path / "nope").start()
