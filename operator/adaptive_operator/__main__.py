"""`python -m adaptive_operator` is the `adaptive-operator` command."""

from adaptive_operator.cli import main

raise SystemExit(main())
