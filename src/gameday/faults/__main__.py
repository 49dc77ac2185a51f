"""``python -m gameday.faults --fault F [--ready-path P] [--live-path P] -- CMD...``: the fault wrapper."""

from gameday.faults.wrapper import main

raise SystemExit(main())
