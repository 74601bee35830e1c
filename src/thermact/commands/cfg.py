"""``thermact cfg [config=PRESET|FILE] [key=value ...]``: print the fully resolved run config.

What ``thermact train`` with the same arguments would run, as YAML: the preset or file, the
overrides applied, every key present with its value (validated exactly as ``train`` validates
it). Redirect it to a file to start a config of your own::

    thermact cfg config=thermal_net_live optim.epochs=60 > my_live.yaml
    thermact train config=my_live.yaml
"""

from __future__ import annotations

import yaml

from thermact.commands._common import load_task_config
from thermact.config import config_to_dict

__all__ = ["main"]


def main(target: str | None, overrides: list[str], lenient: bool) -> int:
    """Print the resolved config of ``train`` with these arguments (nothing is written)."""
    task, cfg = load_task_config(target, overrides, lenient)
    tree = {"task": task.name, **config_to_dict(cfg)}
    print(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), end="")
    return 0
