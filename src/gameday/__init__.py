"""gameday: rehearse deployment rollbacks for real and measure time-to-rollback.

The public surface is small; everything else is internal and may change.

    from gameday import Journal, LocalPostgres, BackupRehearsal
"""

from __future__ import annotations

from gameday.lazy import lazy_exports

__version__ = "0.1.0"

# Imported lazily so `import gameday` stays cheap (the plugin imports it in every pytest run).
_EXPORTS = {
    "GameDayError": "gameday.errors",
    "ConfigError": "gameday.errors",
    "RehearsalFailed": "gameday.errors",
    "Journal": "gameday.journal",
    "Fidelity": "gameday.journal",
    "Status": "gameday.journal",
    "ImageCatalog": "gameday.images",
    "RollbackTimeline": "gameday.timeline",
    "LocalPostgres": "gameday.database.local",
    "BackupRehearsal": "gameday.database.rehearsal",
    "LocalCluster": "gameday.cluster.local",
    "KubernetesRehearsal": "gameday.rehearsals.kubernetes",
    "Project": "gameday.project",
    "LoadGenerator": "gameday.load.generator",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
