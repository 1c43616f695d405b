"""``python -m bot`` is the same as the ``shipthread`` console script."""

from bot.cli import main

raise SystemExit(main())
