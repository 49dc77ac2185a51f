"""Ports for listeners the harness starts later (etcd, the API server, Postgres, moto...): a port is
checked free when drawn, so the one thing that must never happen is the same process drawing it twice
before either listener binds (seen: etcd's peer and client ports drawn alike, etcd exiting 1 with
"address already in use", every scenario of the run an ERROR)."""

from __future__ import annotations

import socket
from contextlib import closing

from gameday import lifecycle


def _small_range(monkeypatch, size: int = 1001) -> range:
    # just over the size below which free_port goes straight to the kernel's choice
    monkeypatch.setattr(lifecycle, "_ephemeral_floor", lambda: lifecycle.LISTEN_FLOOR + size)
    monkeypatch.setattr(lifecycle, "_HANDED_OUT", {})
    return range(lifecycle.LISTEN_FLOOR, lifecycle.LISTEN_FLOOR + size)


def test_a_port_is_never_handed_out_twice_before_its_listener_binds(monkeypatch):
    allowed = _small_range(monkeypatch)
    # 400 draws from ~1000 ports with nothing bound between them: drawn independently, two alike
    # are all but certain (a control plane's six ports collide once in ~850 starts on the full range)
    ports = [lifecycle.free_port() for _ in range(400)]
    assert len(set(ports)) == len(ports), sorted(p for p in set(ports) if ports.count(p) > 1)
    assert all(port in allowed for port in ports)


def test_a_port_taken_when_drawn_is_passed_over(monkeypatch):
    allowed = _small_range(monkeypatch)
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as held:
        held.bind(("127.0.0.1", allowed[0]))
        held.listen()
        ports = {lifecycle.free_port() for _ in range(300)}
    assert allowed[0] not in ports


def test_what_it_remembers_is_bounded(monkeypatch):
    _small_range(monkeypatch)
    monkeypatch.setattr(lifecycle, "_HANDED_OUT_KEPT", 10)
    ports = [lifecycle.free_port() for _ in range(50)]
    assert len(lifecycle._HANDED_OUT) == 10
    assert list(lifecycle._HANDED_OUT) == ports[-10:]  # the newest kept
