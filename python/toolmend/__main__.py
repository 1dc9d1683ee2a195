"""``python -m toolmend``: the command-line interface."""

from toolmend.cli import main

raise SystemExit(main())
