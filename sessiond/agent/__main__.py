"""`python -m sessiond.agent`: the per-session agent."""

import sys

from sessiond.agent.main import main

sys.exit(main())
