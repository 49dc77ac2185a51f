"""Cluster providers: the embedded local cluster (real control plane built from source, process
kubelet, service proxy) and any existing cluster reached through a kubeconfig.

    from gameday.cluster import LocalCluster
    with LocalCluster(nodes=1) as cluster:
        cluster.api_client()
"""

from __future__ import annotations

from gameday.lazy import lazy_exports

# Resolved lazily so `import gameday.cluster.<part>` stays cheap and free of import cycles.
_EXPORTS = {
    "LocalCluster": "gameday.cluster.local",
    "KubeconfigCluster": "gameday.cluster.kubeconfig",
    "ControlPlane": "gameday.cluster.controlplane",
    "ensure_binaries": "gameday.cluster.build",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
