"""`python -m gateway` does what the `omnigw` command does."""

from gateway.cli import main

raise SystemExit(main())
