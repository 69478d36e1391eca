"""The ``spanhooks`` command: ``demo`` runs the simulated agent, ``run`` runs a program with
spanhooks set up from the environment, ``view`` prints a trace file, ``replay`` sends one to an
OTLP endpoint, ``html`` draws one as a waterfall page.

The demo, replay and HTML modules are imported by their subcommands only: the others never
load them (replay brings in the OTLP exporters and their protocol libraries)."""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from spanhooks.callbacks.manager import get_callback_manager
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.installed import instrument_installed
from spanhooks.lifecycle.otlp import env_endpoint, protocol_of
from spanhooks.lifecycle.setup import setup
from spanhooks.util.log import safe_url

__all__ = ["main"]

_SIGPIPE: int | None = getattr(signal, "SIGPIPE", None)
READER_GONE = 128 + _SIGPIPE if _SIGPIPE is not None else 1
"""Exit status when the reader of our output closes early (``spanhooks view f | head``): the
128 + SIGPIPE (141) a shell reports for a Unix tool that SIGPIPE ended, or 1 where there is
no SIGPIPE (Windows), as Python itself exits on EPIPE."""


DEMO_PRICES = {"claude-demo": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}
"""The demo's made-up model, priced like its namesake (USD per million tokens)."""


def _demo(args: argparse.Namespace) -> int:
    from spanhooks.cli.demo import run_demo

    path = Path(args.output)
    if path.exists() and not args.append:
        path.unlink()
    telemetry = setup(
        service_name="spanhooks-demo",
        jsonl_path=path,
        metrics_port=args.metrics_port,
        prices=DEMO_PRICES,
    )
    if telemetry.metrics_server is not None:
        print(f"serving {telemetry.metrics_server.url}/metrics and /health", flush=True)
    stats = run_demo(get_callback_manager(), duration=args.duration)
    telemetry.shutdown()
    result = read_spans(path)
    print(format_trees(build_trees(result.spans), color=sys.stdout.isatty()))
    print()
    tools = ", ".join(f"{name} x{count}" for name, count in sorted(stats.tool_calls.items()))
    print(
        f"{stats.runs} run(s): tool calls {tools}; {stats.messages} messages; "
        f"{stats.module_calls} module calls; "
        f"{stats.meeting_events} meeting events seen by callbacks"
    )
    print(
        f"operations: {stats.errors_handled} error(s) handled, {stats.session_changes} session "
        f"transition(s), {stats.routed} routed event(s)"
    )
    print(f"{len(result.spans)} spans written to {path.resolve()}")
    print(f"view again with: spanhooks view {path}")
    return 0


_TRACED = frozenset({"instrumented", "on import"})


def _run(args: argparse.Namespace) -> int:
    """Set up from the environment, trace every installed framework (unless disabled, see
    :mod:`spanhooks.integrations.installed`), then run the script or module as ``__main__``.

    Exit flushes every finished span (atexit and SIGTERM hooks installed by ``setup``).
    """

    telemetry = setup()
    if telemetry.jsonl_path is not None:
        print(f"spanhooks: writing spans to {telemetry.jsonl_path.resolve()}", file=sys.stderr)
    outcomes = instrument_installed()
    traced = [name for name, outcome in outcomes.items() if outcome in _TRACED]
    if traced:
        print(f"spanhooks: tracing {', '.join(traced)} (when imported)", file=sys.stderr)
    target: str = args.target
    sys.argv = [target, *args.args]
    try:
        if args.module:
            sys.path.insert(0, os.getcwd())
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            if not os.path.exists(target):
                raise FileNotFoundError(2, "No such file", target)
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def _view(args: argparse.Namespace) -> int:
    result = read_spans(args.file)
    if not result.spans:
        print(f"{args.file}: no spans")
        return 0
    print(format_trees(build_trees(result.spans), color=args.color or sys.stdout.isatty()))
    if result.skipped or result.torn_tail:
        notes = []
        if result.skipped:
            notes.append(f"{result.skipped} unreadable line(s) skipped")
        if result.torn_tail:
            notes.append("a torn last line skipped")
        print(f"\nnote: {'; '.join(notes)}", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Send the file where ``--endpoint`` says, else where the ``OTEL_EXPORTER_OTLP_*``
    variables do (as the SDK reads them); with neither, a usage error as before."""
    from spanhooks.export.replay import replay

    endpoint: str | None = args.endpoint
    destination = endpoint or env_endpoint()
    if destination is None:
        usage_error: Callable[[str], NoReturn] = args.usage_error
        usage_error(
            "the following arguments are required: --endpoint (or set "
            "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
        )
    sent, failed = replay(args.file, endpoint, protocol=protocol_of(args.protocol, "TRACES"))
    print(
        f"{sent} span(s) sent to {safe_url(destination)}"
        + (f"; {failed} in failed batches" if failed else "")
    )
    return 0 if not failed else 2


def _html(args: argparse.Namespace) -> int:
    from spanhooks.export.html import render_html

    result = read_spans(args.file)
    output = Path(args.output)
    output.write_text(render_html(result.spans, title=f"spanhooks traces: {args.file}"), "utf-8")
    print(f"{len(result.spans)} spans drawn in {output.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanhooks", description="Callbacks whose every event is OpenTelemetry data."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a simulated agent and print its traces")
    demo.add_argument(
        "-o", "--output", default="spanhooks-traces.jsonl", help="JSONL file to write"
    )
    demo.add_argument(
        "--duration", type=float, default=0.0, help="keep running the agent for this many seconds"
    )
    demo.add_argument(
        "--append", action="store_true", help="append to the file instead of replacing it"
    )
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics and /health on 127.0.0.1:PORT while the demo runs (0: any free port)",
    )
    demo.set_defaults(run=_demo)
    run = commands.add_parser(
        "run",
        help="run a Python script (or -m module) with spanhooks set up from OTEL_*/SPANHOOKS_*",
    )
    run.add_argument("-m", dest="module", action="store_true", help="run a module, like python -m")
    run.add_argument("target", help="the script's path (or with -m, the module's name)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the program")
    run.set_defaults(run=_run)
    view = commands.add_parser("view", help="print a JSONL trace file as trees")
    view.add_argument("file", help="a JSONL file written by spanhooks (either format)")
    view.add_argument("--color", action="store_true", help="colour the output")
    view.set_defaults(run=_view)
    replay = commands.add_parser("replay", help="send a JSONL trace file to an OTLP endpoint")
    replay.add_argument("file", help="a JSONL file written by spanhooks (either format)")
    replay.add_argument(
        "--endpoint",
        help="OTLP endpoint, e.g. http://127.0.0.1:4318 (HTTP); default: "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    replay.add_argument(
        "--protocol",
        default=None,
        choices=["http/protobuf", "grpc"],
        help="OTLP protocol; default: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf",
    )
    replay.set_defaults(run=_replay, usage_error=replay.error)
    page = commands.add_parser("html", help="draw a JSONL trace file as a self-contained page")
    page.add_argument("file", help="a JSONL file written by spanhooks (either format)")
    page.add_argument("-o", "--output", default="traces.html", help="the HTML file to write")
    page.set_defaults(run=_html)
    return parser


def _output_is_a_pipe() -> bool:
    """Whether stdout or stderr is a pipe or socket, the only outputs whose reader can go."""
    for stream in (sys.stdout, sys.stderr):
        try:
            mode = os.fstat(stream.fileno()).st_mode
        except (AttributeError, OSError, ValueError):  # replaced, closed or not a real file
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return True
    return False


def _reader_gone() -> int:
    """Stop writing to a pipe whose reader closed: stdout goes to devnull, so the flush at
    interpreter exit cannot raise BrokenPipeError again (the Python docs' SIGPIPE note)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by the program ``run`` ran
        fd = 1
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return READER_GONE


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a missing or unreadable input file (damaged, binary, a directory, not
    permitted) is a one-line error and exit code 1. Output piped into a reader that closes
    early (``| head``) ends quietly with :data:`READER_GONE`, as other Unix tools do."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # here, not at exit, so a reader gone is seen while we can act
    except BrokenPipeError:
        if not _output_is_a_pipe():  # a socket of the program ``run`` ran: its own error
            raise
        return _reader_gone()
    except FileNotFoundError as exc:
        print(f"spanhooks {args.command}: no such file: {exc.filename}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"spanhooks {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a directory, no permission: still one line, no traceback
        if exc.filename is None:
            raise
        print(
            f"spanhooks {args.command}: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
