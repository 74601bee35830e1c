"""``thermact train [config=FILE] [key=value ...]``: train an action model or, with ``task: detector``,
the person detector; ``resume=PATH`` continues a run exactly."""

from __future__ import annotations

import os

from thermact.commands._common import load_task_config
from thermact.engine.loop import format_metrics
from thermact.engine.run import train

__all__ = ["main"]


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """``thermact train``: the config's ``task`` picks the task; prints where everything went."""
    task, cfg = load_task_config(target, overrides, lenient)
    result = train(task, cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {result.run_dir}")
        if result.best_checkpoint.is_file():
            print(f"  best checkpoint: {result.best_checkpoint}  ({format_metrics(result.best_metrics)})")
        else:
            print("  best checkpoint: none (no validation: the last checkpoint is the model)")
        print(f"  last checkpoint: {result.last_checkpoint}")
        print(f"  metrics log: {result.run_dir / 'metrics.jsonl'}, config: {result.run_dir / 'config.yaml'}")
    return 130 if result.interrupted else 0
