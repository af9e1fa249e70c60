"""`python -m optforge.agent.cli`: the same as the `optforge` command."""

import sys

from optforge.agent.cli.main import main

sys.exit(main())
