"""The ``thermact`` command line.

Usage::

    thermact train [config=PRESET|FILE] [key=value ...]
    thermact cfg   [config=PRESET|FILE] [key=value ...]
    thermact eval  checkpoint=PATH [key=value ...]
    thermact cv    [config=PRESET|FILE] protocol=session|recording [pretrain.epochs=N] [key=value ...]
    thermact baseline [kind=box_gbm|prior] [protocol=session|recording] [key=value ...]
    thermact pretrain [config=PRESET|FILE] [key=value ...]
    thermact export checkpoint=PATH [out=FILE.onnx] [verify=true]
    thermact detect RECORDING.h5|DIR [checkpoint=ACTION] [detector=DETECTOR] [key=value ...]
    thermact stream [DIR] [checkpoint=ACTION] [detector=DETECTOR] [speed=1.0|max] [key=value ...]
    thermact data inspect [DATASET] [key=value ...] [--lenient]
    thermact data split   [DATASET] [key=value ...] [--lenient]
    thermact model info   [CONFIG]  [key=value ...]
    thermact model ensemble members=[A.pt,B.pt,..] out=FILE.pt

Arguments of the form ``key=value`` are validated configuration overrides (dotted paths for
nested keys); any other argument is the positional dataset / config path. ``-q``/``--quiet``
shows only warnings and errors, ``-v``/``--verbose`` debug messages too (:mod:`thermact.logs`);
results (final metrics, configs, help) print to stdout, progress and information to stderr.
``thermact CMD --help`` lists every key of a command with its type, default and meaning. Every user error (a missing
file, a bad key, a corrupt record) prints one ``error:`` line naming the file, record or key, and
exits with status 2; nothing is half-written.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from thermact import __version__
from thermact.commands import baseline, cfg, cv, data, detect, export, model, pretrain, stream, train
from thermact.commands import eval as eval_
from thermact.commands._common import help_text, training_help
from thermact.config import describe_config
from thermact.errors import ThermactError
from thermact.logs import configure_console
from thermact.runtime import configure_cpu_math

Handler = Callable[[str | None, list[str], bool], int]


@dataclasses.dataclass(frozen=True)
class Command:
    """One command: what runs, its arguments and summary, and the keys its ``--help`` lists.

    ``options`` is the dataclass of its ``key=value`` options; ``None`` means the command takes a
    run config (its help lists the keys of the task and preset the command line selects, then the
    command's own keys of ``extra``).
    """

    run: Handler
    args: str
    summary: str
    options: type[Any] | None = None
    extra: type[Any] | None = None


TOP_LEVEL: dict[str, Command] = {
    "train": Command(
        train.main,
        "[config=PRESET|FILE] [key=value ...]",
        "train an action model (or, with task=detector, the person detector); resume=PATH continues",
    ),
    "cfg": Command(
        cfg.main, "[config=PRESET|FILE] [key=value ...]", "print the resolved config train would run"
    ),
    "eval": Command(
        eval_.main,
        "checkpoint=PATH [split=..] [fold=..] [dataset=..]",
        "frame-mAP, accuracy, per-class AP, plots and AVA CSVs of a checkpoint",
        eval_.EvalOptions,
    ),
    "cv": Command(
        cv.main,
        "[config=PRESET|FILE] protocol=session|recording [pretrain.epochs=N] [key=value ...]",
        "honest cross-validation: every fold trained and tested, last epoch, mean ± spread",
        extra=cv.CvOptions,
    ),
    "baseline": Command(
        baseline.main,
        "[kind=box_gbm|prior] [protocol=session|recording] [key=value ...]",
        "the simple baselines (class prior, gradient boosting on box cues), reported as cv reports",
        baseline.BaselineOptions,
    ),
    "pretrain": Command(
        pretrain.main,
        "[config=PRESET|FILE] [key=value ...]",
        "self-supervised masked-clip pretraining of a ThermalNet backbone on unlabelled frames",
        pretrain.PretrainRunConfig,
    ),
    "export": Command(
        export.main,
        "checkpoint=PATH [out=FILE.onnx] [verify=true]",
        "ONNX export of a checkpoint, checked against PyTorch with onnxruntime",
        export.ExportOptions,
    ),
    "detect": Command(
        detect.main,
        "RECORDING.h5|DIR [checkpoint=ACTION] [detector=DETECTOR] [key=value ...]",
        "per-person boxes, tracks and actions of recordings: JSONL, AVA CSV, events, animation",
        detect.DetectOptions,
    ),
    "stream": Command(
        stream.main,
        "[DIR] [checkpoint=ACTION] [detector=DETECTOR] [speed=1.0|max] [key=value ...]",
        "replay recordings as live sensors: per-frame actions, events, latency summary",
        stream.StreamOptions,
    ),
}

COMMANDS: dict[str, dict[str, Command]] = {
    "data": {
        "inspect": Command(
            data.main_inspect,
            "[DATASET] [key=value ...]",
            "summary of recordings, sessions, classes, splits, leakage and problems",
            data.InspectOptions,
        ),
        "split": Command(
            data.main_split,
            "[DATASET] [key=value ...]",
            "write the split definitions (given, session, leave-one-recording-out)",
            data.SplitOptions,
        ),
    },
    "model": {
        "info": Command(
            model.main_info,
            "[CONFIG] [key=value ...]",
            "parameters, MACs, stage shapes and temporal receptive field of a configured model",
            model.ModelSection,
        ),
        "ensemble": Command(
            model.main_ensemble,
            "members=[A.pt,B.pt,..] out=FILE.pt",
            "one checkpoint averaging trained action models (runs of one recipe, other seeds)",
            model.EnsembleOptions,
        ),
    },
}

HELP_FLAGS = ("-h", "--help")
QUIET_FLAGS = ("-q", "--quiet")
VERBOSE_FLAGS = ("-v", "--verbose")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def usage() -> str:
    """What ``thermact`` and ``thermact --help`` print."""
    lines = [f"thermact {__version__}: action detection on low-resolution thermal sensors", "", "usage:"]
    for name, command in TOP_LEVEL.items():
        lines.append(f"  thermact {name} {command.args}\n      {command.summary}")
    for group, commands in COMMANDS.items():
        for name, command in commands.items():
            lines.append(f"  thermact {group} {name} {command.args}\n      {command.summary}")
    lines += [
        "",
        "options:  key=value  validated config override (dotted keys, e.g. optim.lr=0.001)",
        "          --lenient  skip bad records with a warning each instead of failing on the first",
        "          -q/--quiet  warnings and errors only;  -v/--verbose  debug messages too",
        "          -h/--help (also after a command: its keys, types and defaults), --version",
    ]
    return "\n".join(lines)


def command_help(name: str, command: Command, target: str | None, overrides: Sequence[str]) -> str:
    """What ``thermact NAME --help`` prints."""
    usage_line = f"thermact {name} {command.args}"
    if command.options is None:
        extra = describe_config(command.extra) if command.extra is not None else []
        return training_help(target, overrides, usage_line, command.summary, extra)
    return help_text(usage_line, command.summary, describe_config(command.options))


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(choices)}"


def find_command(args: Sequence[str]) -> tuple[str, Command, list[str]]:
    """The command named at the start of ``args``: (its name, the command, the rest of args)."""
    if args[0] in TOP_LEVEL:
        return args[0], TOP_LEVEL[args[0]], list(args[1:])
    if args[0] not in COMMANDS:
        raise ThermactError(f"unknown command {args[0]!r}" + _did_you_mean(args[0], [*TOP_LEVEL, *COMMANDS]))
    group = COMMANDS[args[0]]
    if len(args) < 2 or args[1] in HELP_FLAGS:
        raise ThermactError(f"missing sub-command of {args[0]!r}; choose from {', '.join(group)}")
    if args[1] not in group:
        raise ThermactError(f"unknown command '{args[0]} {args[1]}'" + _did_you_mean(args[1], list(group)))
    return f"{args[0]} {args[1]}", group[args[1]], list(args[2:])


def split_arguments(rest: Sequence[str]) -> tuple[str | None, list[str]]:
    """(the one positional argument or None, the ``key=value`` overrides)."""
    positionals = [a for a in rest if "=" not in a]
    overrides = [a for a in rest if "=" in a]
    if len(positionals) > 1:
        raise ThermactError(f"expected at most one positional argument, got {positionals}")
    return (positionals[0] if positionals else None), overrides


def verbosity(args: Sequence[str]) -> int:
    """-1 with ``-q``/``--quiet``, 1 with ``-v``/``--verbose``, else 0 (both: an error)."""
    quiet = any(a in QUIET_FLAGS for a in args)
    verbose = any(a in VERBOSE_FLAGS for a in args)
    if quiet and verbose:
        raise ThermactError("options -q/--quiet and -v/--verbose contradict each other; pass one")
    return -1 if quiet else 1 if verbose else 0


def run(args: Sequence[str]) -> int:
    """Parse ``args`` (without the program name) and run the command, or print its help."""
    lenient = "--lenient" in args
    wants_help = any(a in HELP_FLAGS for a in args)
    configure_console(verbosity(args))
    flags = {"--lenient", *HELP_FLAGS, *QUIET_FLAGS, *VERBOSE_FLAGS}
    args = [a for a in args if a not in flags]
    unknown_flags = [a for a in args if a.startswith("-") and "=" not in a and not _is_number(a)]
    if unknown_flags:
        known = ["--lenient", "--help", "--quiet", "--verbose"]
        raise ThermactError(f"unknown option {unknown_flags[0]!r}" + _did_you_mean(unknown_flags[0], known))
    name, command, rest = find_command(args)
    target, overrides = split_arguments(rest)
    if wants_help:
        print(command_help(name, command, target, overrides))
        return 0
    return command.run(target, overrides, lenient)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thermact`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in (*HELP_FLAGS, "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    configure_cpu_math()
    try:
        return run(args)
    except ThermactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file-system failure no check could foresee (e.g. a full disk)
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
