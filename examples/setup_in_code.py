"""The same agent as ``agent.py``, with spanhooks set up in code instead of by ``spanhooks run``.

python examples/setup_in_code.py
"""

from __future__ import annotations

import spanhooks

spanhooks.setup()  # OTEL_* and SPANHOOKS_* settings apply here too

from agent import main  # noqa: E402  (set up before the agent's module is imported)

if __name__ == "__main__":
    main()
