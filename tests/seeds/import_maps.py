"""How each seed's code blocks are run on spanhooks: the one place that says which import lines
change. Each map turns a module the seed's examples import from into the spanhooks module that
replaces it; nothing else in a block is edited (where a block is pseudo-code, its test says so
and runs the nearest runnable form)."""

from __future__ import annotations

import re

OPUSAGENT: dict[str, str] = {
    "opusagent.handlers.error_handler": "spanhooks.compat.opusagent",
    "opusagent.models.session_state": "spanhooks.compat.opusagent",
    "opusagent.handlers.polling_manager": "spanhooks.compat.opusagent",
    "opusagent.handlers.resource_manager": "spanhooks.compat.opusagent",
    "opusagent.handlers.event_router": "spanhooks.compat.opusagent",
    "opusagent.handlers.health_monitor": "spanhooks.compat.opusagent",
}
"""OpusAgent's callback systems (error handler, sessions, polling, resources, router, health)."""

THEA: dict[str, str] = {
    "src.theaia.core.callbacks": "spanhooks.compat.thea",
    "theaia.core.callbacks": "spanhooks.compat.thea",
}
"""Thea's CallbackManager."""

LLMPROC: dict[str, str] = {"llmproc": "spanhooks.compat.llmproc"}
"""LLMProc's callbacks."""

MESSAGING: dict[str, str] = {"agent_messaging": "spanhooks.compat.messaging"}
"""The Agent Messaging Protocol's message and meeting event handlers."""

LOGILLM: dict[str, str] = {
    "logillm.core.callbacks": "spanhooks.compat.logillm",
    "logillm.core.jsonl_callback": "spanhooks.compat.logillm",
    "logillm.core.jsonl_logger": "spanhooks.compat.logillm",
}
"""LogiLLM's callback API only: ``logillm.core.predict``, ``logillm.providers`` and the rest of
LogiLLM are the real package (its events reach spanhooks through
``spanhooks.integrations.logillm``, which ``spanhooks.compat.logillm`` instruments)."""


def rewrite_imports(code: str, mapping: dict[str, str]) -> str:
    """``code`` with ``from X import ...`` and ``import X`` lines pointed at ``mapping[X]``
    (the longest matching module prefix wins; ``X.sub`` maps with it)."""

    def target(module: str) -> str | None:
        for source in sorted(mapping, key=len, reverse=True):
            if module == source or module.startswith(source + "."):
                return mapping[source]
        return None

    def replace(match: re.Match[str]) -> str:
        indent, keyword, module, rest = match.groups()
        found = target(module)
        if found is None:
            return match.group(0)
        if keyword == "import" and not rest.lstrip().startswith("as "):
            rest = f" as {module}{rest}" if "." not in module else rest  # ``import seed``
        return f"{indent}{keyword} {found}{rest}"

    return re.sub(r"^(\s*)(from|import) ([\w.]+)(.*)$", replace, code, flags=re.MULTILINE)
