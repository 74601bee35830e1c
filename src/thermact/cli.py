"""The ``thermact`` command line.

Usage::

    thermact train [config=FILE] [key=value ...]
    thermact eval  checkpoint=PATH [key=value ...]
    thermact cv    [config=FILE] protocol=session|recording [key=value ...]
    thermact export checkpoint=PATH [out=FILE.onnx] [verify=true]
    thermact detect RECORDING.h5|DIR checkpoint=ACTION.pt detector=DETECTOR.pt [key=value ...]
    thermact stream [DIR] checkpoint=ACTION.pt detector=DETECTOR.pt [speed=1.0|max] [key=value ...]
    thermact data inspect [DATASET] [key=value ...] [--lenient]
    thermact data split   [DATASET] [key=value ...] [--lenient]
    thermact model info   [CONFIG]  [key=value ...]

Arguments of the form ``key=value`` are validated configuration overrides (dotted paths for
nested keys); any other argument is the positional dataset / config path. Every user error
(a missing file, a bad key, a corrupt record) prints one ``error:`` line naming the file, record
or key, and exits with status 2; nothing is half-written.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence

from thermact import __version__
from thermact.commands import cv, data, detect, export, model, stream, train
from thermact.commands import eval as eval_
from thermact.errors import ThermactError
from thermact.runtime import configure_cpu_math

Handler = Callable[[str | None, list[str], bool], int]


TOP_LEVEL: dict[str, tuple[Handler, str]] = {
    "train": (train.main, "[config=FILE] [key=value ...] train an action detector (resume=PATH continues)"),
    "eval": (eval_.main, "checkpoint=PATH [split=..] [fold=..] frame-mAP, metrics, plots, AVA CSV"),
    "export": (
        export.main,
        "checkpoint=PATH [out=FILE.onnx] [verify=true]  ONNX export checked with onnxruntime",
    ),
    "detect": (
        detect.main,
        "RECORDING.h5|DIR checkpoint=ACTION.pt detector=DET.pt  JSONL, AVA CSV, GIF per recording",
    ),
    "stream": (
        stream.main,
        "[DIR] checkpoint=.. detector=.. [speed=1.0|max] [onnx=true]  live replay, events",
    ),
    "cv": (cv.main, "[config=FILE] protocol=session|recording  honest cross-validation, mean ± spread"),
}

COMMANDS: dict[str, dict[str, tuple[Handler, str]]] = {
    "data": {
        "inspect": (
            data.main_inspect,
            "[DATASET] summary of recordings, classes, splits, leakage and problems",
        ),
        "split": (
            data.main_split,
            "[DATASET] write the split definitions (given, session, leave-one-recording-out)",
        ),
    },
    "model": {
        "info": (model.main_info, "[CONFIG] parameters, MACs, stage shapes and receptive field of a model"),
    },
}


def usage() -> str:
    lines = [f"thermact {__version__}: action detection on low-resolution thermal sensors", "", "usage:"]
    for name, (_, text) in TOP_LEVEL.items():
        lines.append(f"  thermact {name} {text}")
    for group, cmds in COMMANDS.items():
        for name, (_, text) in cmds.items():
            lines.append(f"  thermact {group} {name} {text}")
    lines += [
        "",
        "options:  key=value  validated config override (dotted keys, e.g. clip.window_s=2.5)",
        "          --lenient  skip bad records with a warning each instead of failing on the first",
        "          --help, --version",
    ]
    return "\n".join(lines)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(choices)}"


def parse(argv: Sequence[str]) -> tuple[Handler, str | None, list[str], bool]:
    """Split argv into (handler, positional target, overrides, lenient); raise ThermactError."""
    args = list(argv)
    lenient = "--lenient" in args
    args = [a for a in args if a != "--lenient"]
    unknown_flags = [a for a in args if a.startswith("--")]
    if unknown_flags:
        raise ThermactError(
            f"unknown option {unknown_flags[0]!r}" + _did_you_mean(unknown_flags[0], ["--lenient"])
        )
    if not args:
        raise ThermactError("missing command\n" + usage())
    if args[0] in TOP_LEVEL:
        handler, rest = TOP_LEVEL[args[0]][0], args[1:]
    else:
        if args[0] not in COMMANDS:
            raise ThermactError(
                f"unknown command {args[0]!r}" + _did_you_mean(args[0], [*TOP_LEVEL, *COMMANDS])
            )
        if len(args) < 2:
            raise ThermactError(
                f"missing sub-command of {args[0]!r}; choose from {', '.join(COMMANDS[args[0]])}"
            )
        group, name, rest = args[0], args[1], args[2:]
        if name not in COMMANDS[group]:
            raise ThermactError(
                f"unknown command '{group} {name}'" + _did_you_mean(name, list(COMMANDS[group]))
            )
        handler = COMMANDS[group][name][0]
    positionals = [a for a in rest if "=" not in a]
    overrides = [a for a in rest if "=" in a]
    if len(positionals) > 1:
        raise ThermactError(f"expected at most one positional argument, got {positionals}")
    return handler, (positionals[0] if positionals else None), overrides, lenient


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thermact`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    configure_cpu_math()
    try:
        handler, target, overrides, lenient = parse(args)
        return handler(target, overrides, lenient)
    except ThermactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
