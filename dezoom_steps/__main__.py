"""`python -m dezoom_steps` runs the `dezoom` command line."""

from dezoom_steps.cli import main

raise SystemExit(main())
