"""The demo service under test: an orders API whose releases can be broken on purpose.

Run it with ``HOST=127.0.0.2 PORT=8080 DEMO_VERSION=1.0.0 python -m gameday.demo``.
Fault modes come from ``DEMO_FAULT`` (see gameday.demo.faults); the image catalog
(images: in demo/project/gameday.yaml) maps each demo image tag to a version and its faults.
"""

HEADER = "X-Served-By-Version"
