"""`python -m sessiond.agent`: the per-session agent."""

import sys

# The agent speaks no TLS (its link is a Unix socket to sessiond), but asyncio
# imports ssl if it can, and OpenSSL's initialisation costs 1-2 MiB of private
# memory in every session: refused before asyncio is imported. The zygote
# (isolation/zygote.py) does the same before it preloads the agent.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

from sessiond.agent.main import main  # noqa: E402 - after the ssl refusal

sys.exit(main())
