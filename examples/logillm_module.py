"""A LogiLLM module and optimizer traced by spanhooks with one line, offline.

    python examples/logillm_module.py

``instrument()`` is the one line; the rest is LogiLLM as usual, on its ``MockProvider`` (no
network, no API key). A ``Predict`` module answers a question, then ``LabeledFewShot`` optimizes
it against a small labelled set. The trace (``module Predict`` > ``chat mock-model``, and
``optimize LabeledFewShot`` > ``evaluate Predict`` > ``module Predict`` > ``chat mock-model``)
goes to ``./spanhooks-traces.jsonl`` and is printed at the end; a LogiLLM-style typed callback
registered on spanhooks prints each module's outcome.

Needs ``pip install 'spanhooks[logillm]'``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import spanhooks
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.logillm import instrument
from spanhooks.vocab.logillm import LogiLLMCallback, ModuleEndEvent


class PrintOutcome(LogiLLMCallback):
    def on_module_end(self, event: ModuleEndEvent) -> None:
        status = "ok" if event.success else f"failed: {event.error}"
        print(f"module {type(event.module).__name__} {status} (call {event.context.call_id})")


def exact_answer(outputs: dict[str, Any], expected: dict[str, Any]) -> float:
    return float(outputs.get("answer") == expected.get("answer"))


async def run() -> None:
    from logillm.core.predict import Predict
    from logillm.optimizers.labeled_fewshot import LabeledFewShot
    from logillm.providers.mock import MockProvider

    qa = Predict("question -> answer", provider=MockProvider(response_text="answer: Paris"))
    prediction = await qa(question="What is the capital of France?")
    print("answer:", prediction.outputs["answer"])

    examples = [{"inputs": {"question": "Capital of France?"}, "outputs": {"answer": "Paris"}}]
    result = await LabeledFewShot(metric=exact_answer, max_demos=1).optimize(
        qa, examples, validation_set=examples
    )
    print("best score:", result.best_score)


def main() -> None:
    telemetry = spanhooks.setup()
    instrument()  # the one line: every LogiLLM event is a spanhooks event from here on
    spanhooks.register(PrintOutcome())
    asyncio.run(run())
    spanhooks.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
