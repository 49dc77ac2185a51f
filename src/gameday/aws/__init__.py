"""AWS for rehearsals: moto's ECS/RDS API on 127.0.0.1 with real ECS task processes behind it.

    from gameday.aws import MotoServer
    with MotoServer() as aws:
        ecs = aws.client("ecs")

See docs/aws.md for what is real and what is simulated, and for real AWS.
"""

from gameday.aws.moto_server import MotoServer
from gameday.aws.target import REHEARSAL_TAG, RealAws, aws_target

__all__ = ["MotoServer", "REHEARSAL_TAG", "RealAws", "aws_target"]
