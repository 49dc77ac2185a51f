"""``python -m gameday.demo``: run the demo service (see gameday.demo.run for its env)."""

from gameday.demo.run import main

raise SystemExit(main())
