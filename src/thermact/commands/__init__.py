"""The command layer: one module per ``thermact`` command.

Each module holds the command's options dataclass, the ``run_*`` function that does the work and
returns what it produced (for callers and tests), and ``main(target, overrides, lenient) -> int``
that prints. Library modules (data, models, engine, evaluation, inference, export) never import
this package; :mod:`thermact.cli` dispatches to it.
"""
