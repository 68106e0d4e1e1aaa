"""`python -m roost` is the `roost` command."""

from roost.cli.dispatch import main

raise SystemExit(main())
