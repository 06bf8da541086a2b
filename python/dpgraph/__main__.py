"""``python -m dpgraph ...``: the command line (dpgraph.app.cli)."""

from .app.cli import main

raise SystemExit(main())
