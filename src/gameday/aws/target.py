"""Which AWS gameday talks to, and the guard that keeps it off production.

By default every AWS call goes to a local :class:`~gameday.aws.moto_server.MotoServer`.
Real AWS is used only when configured explicitly (``GAMEDAY_AWS=real``; credentials and
region come from the usual AWS environment or profile), and even then gameday acts
only on targets tagged ``gameday:rehearsal=true`` (the ECS cluster or service, the RDS
instance), unless ``GAMEDAY_ALLOW_NON_REHEARSAL=1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gameday import settings
from gameday.errors import GameDayError
from gameday.lifecycle import Provider

DEFAULT_REGION = "us-east-1"
REHEARSAL_TAG = "gameday:rehearsal"


class RealAws(Provider):
    """The account the standard AWS environment points at; nothing to start or stop."""

    name = "aws"
    rehearsal = False  # each target must prove it is a rehearsal target (see require_rehearsal)

    def __init__(self, region: str | None = None, profile: str | None = None, **_: Any) -> None:
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.profile = profile or os.environ.get("AWS_PROFILE")

    def start(self) -> RealAws:
        return self

    def stop(self) -> None:
        return None

    def endpoints(self) -> dict[str, Any]:
        return {"region": self.region, "profile": self.profile}

    def env(self) -> dict[str, str]:
        return {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session(profile_name=self.profile, region_name=self.region).client(service)  # type: ignore[call-overload]


def aws_target(**options: Any) -> Provider:
    """The configured AWS, through the provider registry: a local MotoServer (default) or real
    AWS (``GAMEDAY_AWS=real``; moto's options, images and run_tasks, do not apply there)."""
    from gameday.providers import provider

    return provider("aws", **options)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TargetRef:
    kind: str  # "ECS cluster", "ECS service", "RDS instance"
    name: str
    arn: str


def require_rehearsal(aws: Any, *targets: TargetRef, tags_of: Any) -> None:
    """Refuse to act unless one of ``targets`` carries ``gameday:rehearsal=true``.

    ``tags_of(arn) -> dict`` reads a resource's tags.  Local moto targets always pass.
    """
    if getattr(aws, "rehearsal", False) or settings.get("allow-non-rehearsal") == "1":
        return
    for target in targets:
        try:
            if str(tags_of(target.arn).get(REHEARSAL_TAG, "")).lower() == "true":
                return
        except Exception:  # noqa: BLE001 - a target we cannot read is not a rehearsal target
            continue
    names = ", ".join(f"{t.kind} {t.name}" for t in targets)
    raise GameDayError(
        f"refusing to act on {names}: not tagged {REHEARSAL_TAG}=true",
        fix=f"tag it {REHEARSAL_TAG}=true, or set GAMEDAY_ALLOW_NON_REHEARSAL=1 if you really mean it",
    )


def ecs_tags(ecs: Any):  # type: ignore[no-untyped-def]
    def read(arn: str) -> dict[str, str]:
        tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
        return {t["key"]: t["value"] for t in tags}

    return read


def rds_tags(rds: Any):  # type: ignore[no-untyped-def]
    def read(arn: str) -> dict[str, str]:
        tags = rds.list_tags_for_resource(ResourceName=arn).get("TagList", [])
        return {t["Key"]: t["Value"] for t in tags}

    return read
