"""The README's Python examples run as written (the blocks after a ``readme-example`` marker)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme-example: {name} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"README has no example {name!r}"
    return match.group(1)


@pytest.mark.usefixtures("one_thread")
def test_python_api_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").symlink_to(ROOT / "src")  # the example's relative paths, outputs in tmp
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example("api"), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[-1] == "19 1018"
    frames, tracks = (int(x) for x in lines[0].split()[:2])
    assert frames > 100 and tracks >= 1
    assert "'frame_map':" in lines[-2]
    assert (tmp_path / "runs" / "readme_detect" / "SL18_R1.jsonl").is_file()
