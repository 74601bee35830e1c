"""Bad input through the real command line: each case breaks a copy of a small dataset one way.

Every case must give exit status 2 with exactly one ``error:`` line naming the file, record or key
at fault, no traceback and nothing half-written (see ``conftest.py``). ``--lenient`` then either
skips the bad record or recording with a warning (``lenient_rc=0``) or still fails when nothing
sensible can be skipped (``lenient_rc=2``).

The tables are meant to grow: a new kind of bad input is one more :class:`Case`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pytest

if TYPE_CHECKING:
    from conftest import Cli, CliResult

Mutation = Callable[[Path], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One way to break a dataset copy ``root`` (``mutate``) and what the error must name."""

    name: str
    mutate: Mutation
    names: tuple[str, ...]
    lenient_rc: int = 0

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------
# Mutations


def rewrite_h5(rid: str, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Mutation:
    """Rewrite recording ``rid`` after ``edit(datasets, attrs)`` changed its arrays / attributes in place."""

    def mutate(root: Path) -> None:
        path = root / "frames" / f"{rid}.h5"
        with h5py.File(path, "r") as f:
            datasets = {k: f[k][()] for k in f}
            attrs = dict(f.attrs)
        edit(datasets, attrs)
        with h5py.File(path, "w") as f:
            for k, v in datasets.items():
                f.create_dataset(k, data=v)
            f.attrs.update(attrs)

    return mutate


def edit_json(relative: str, edit: Callable[[Any], None]) -> Mutation:
    def mutate(root: Path) -> None:
        path = root / relative
        obj = json.loads(path.read_text())
        edit(obj)
        path.write_text(json.dumps(obj))

    return mutate


def write_bytes(relative: str, make: Callable[[bytes], bytes]) -> Mutation:
    def mutate(root: Path) -> None:
        path = root / relative
        path.write_bytes(make(path.read_bytes()))

    return mutate


def remove(*relative: str) -> Mutation:
    def mutate(root: Path) -> None:
        for rel in relative:
            path = root / rel
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    return mutate


def _transpose(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["frames"] = np.ascontiguousarray(d["frames"].transpose(0, 2, 1))


def _crop(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["frames"] = d["frames"][:, :20, :30]
    a["frame_height"], a["frame_width"] = 20, 30


def _deci_kelvin(d: dict[str, Any], a: dict[str, Any]) -> None:
    frames = np.where(d["frames"] < -200, 0.0, d["frames"])
    d["frames"] = np.rint((frames + 273.15) * 10).astype(np.uint16)


def _seconds(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["timestamps"] = d["timestamps"] // 1000


def _shuffle(d: dict[str, Any], a: dict[str, Any]) -> None:
    order = np.random.default_rng(0).permutation(len(d["timestamps"]))
    d["frames"], d["timestamps"], d["frame_seqs"] = (
        d["frames"][order],
        d["timestamps"][order],
        d["frame_seqs"][order],
    )


def _repeat(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["timestamps"][10:15] = d["timestamps"][9]


def _nan_frame(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["frames"][3] = np.nan


def _dead(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["frames"][:] = np.float32(-273.2)


def _float_timestamps(d: dict[str, Any], a: dict[str, Any]) -> None:
    d["timestamps"] = d["timestamps"].astype(np.float64)


def _drop_timestamps(d: dict[str, Any], a: dict[str, Any]) -> None:
    del d["timestamps"]


def _ann(index: int, **changes: Any) -> Callable[[Any], None]:
    def edit(coco: Any) -> None:
        coco["annotations"][index].update(changes)

    return edit


def _integer_ids(coco: Any) -> None:
    """Number the images 1..N (as COCO exports do) instead of '<recording>_<ms>'."""
    ids = {img["id"]: i + 1 for i, img in enumerate(coco["images"])}
    for img in coco["images"]:
        img["id"] = ids[img["id"]]
    for ann in coco["annotations"]:
        ann["image_id"] = ids[ann["image_id"]]


def _duplicate_integer_ids(coco: Any) -> None:
    _integer_ids(coco)
    coco["images"][1]["id"] = 1


def _spare_recording(root: Path) -> None:
    shutil.copy(root / "frames" / "SL18_R1.h5", root / "frames" / "spare.h5")


def _add_unknown_id(split: Any) -> None:
    split["folds"][0]["train"].append("SL18_R1_123")


DATASET_CASES = [
    Case("truncated_h5", write_bytes("frames/SL18_R2.h5", lambda b: b[: len(b) // 2]), ("SL18_R2.h5", "truncated or corrupt")),
    Case("zero_byte_h5", write_bytes("frames/SL18_R2.h5", lambda b: b""), ("SL18_R2.h5", "not a readable HDF5 file")),
    Case("transposed_frames", rewrite_h5("SL18_R2", _transpose), ("SL18_R2.h5", "[T, 60, 40]", "(transposed?)")),
    Case("wrong_frame_size", rewrite_h5("SL18_R2", _crop), ("SL18_R2.h5", "20 high x 30 wide")),
    Case("uint16_deci_kelvin", rewrite_h5("SL18_R2", _deci_kelvin), ("SL18_R2.h5", "(uint16)", "deci-Kelvin")),
    Case("nan_frame", rewrite_h5("SL18_R2", _nan_frame), ("SL18_R2.h5: frame 3", "no valid pixel")),
    Case("dead_recording", rewrite_h5("SL18_R2", _dead), ("SL18_R2.h5", "no valid pixel in the whole recording")),
    Case("timestamps_in_seconds", rewrite_h5("SL18_R2", _seconds), ("SL18_R2.h5", "look like Unix seconds")),
    Case("timestamps_shuffled", rewrite_h5("SL18_R2", _shuffle), ("SL18_R2.h5", "out of time order")),
    Case("timestamps_duplicated", rewrite_h5("SL18_R2", _repeat), ("SL18_R2.h5", "5 frame(s) repeat an earlier timestamp")),
    Case("timestamps_float", rewrite_h5("SL18_R2", _float_timestamps), ("SL18_R2.h5", "integer milliseconds")),
    Case("timestamps_missing", rewrite_h5("SL18_R2", _drop_timestamps), ("SL18_R2.h5", "missing dataset 'timestamps'")),
    Case("bad_json", write_bytes("annotations/train.json", lambda b: b[:100]), ("train.json", "not valid JSON"), 2),
    Case("bad_class_mapping", write_bytes("annotations/class_mapping.json", lambda b: b"{"), ("class_mapping.json",), 2),
    Case("unknown_class_id", edit_json("annotations/val.json", _ann(0, category_id=42)), ("val.json: annotations[0]", "unknown class id 42")),
    Case("unknown_image_id", edit_json("annotations/val.json", _ann(0, image_id="nope")), ("val.json: annotations[0]", "unknown image")),
    Case("duplicate_integer_image_id", edit_json("annotations/train.json", _duplicate_integer_ids), ("train.json: images[1]", "duplicate image id 1")),
    Case("box_nan", edit_json("annotations/val.json", _ann(0, bbox=[0.5, float("nan"), 0.1, 0.1])), ("val.json: annotations[0]", "4 finite numbers")),
    Case("box_off_frame", edit_json("annotations/val.json", _ann(0, bbox=[1.2, 0.5, 0.1, 0.1])), ("val.json: annotations[0]", "off the 60x40 frame")),
    Case("box_negative", edit_json("annotations/val.json", _ann(0, bbox=[0.5, 0.5, -0.1, 0.1])), ("val.json: annotations[0]", "zero or negative area")),
    Case("annotations_for_missing_recording", remove("frames/SL18_R2.h5"), ("name recording 'SL18_R2'", "SL18_R2.h5 does not exist")),
    Case("raw_malformed_line", write_bytes("raw_annotations/SL18_R1_annotation.json", lambda b: b + b"{broken\n"), ("SL18_R1_annotation.json:", "malformed JSON line")),
    Case("split_file_unknown_id", edit_json("splits/session.json", _add_unknown_id), ("session.json: fold 'SL18->SL14' train", "SL18_R1_123")),
    Case("missing_frames_dir", remove("frames"), ("missing 'frames' directory",), 2),
    Case("no_annotation_file", remove("annotations/train.json", "annotations/val.json"), ("no annotation file",), 2),
]  # fmt: skip


@pytest.mark.parametrize("case", DATASET_CASES, ids=str)
def test_data_inspect(cli: Cli, case: Case, broken: Path, tmp_path: Path) -> None:
    case.mutate(broken)
    report = tmp_path / "out" / "report.json"
    result = cli.run(["data", "inspect", broken, f"out={report}"])
    line = cli.assert_clean_error(result, case.names, [] if case.lenient_rc == 0 else [report])
    if case.lenient_rc == 0:  # a record-level problem: the complete report lists it
        loader = json.loads(report.read_text())["problems"]["loader"]
        assert any(case.names[-1] in p for p in loader), loader
        report.unlink()
    lenient = cli.run(["data", "inspect", broken, f"out={report}", "--lenient"])
    assert "Traceback" not in lenient.stderr
    assert lenient.rc == case.lenient_rc, lenient.stderr
    if case.lenient_rc == 0:
        assert case.names[-1] in lenient.stdout and "record(s) skipped" in lenient.stdout
    else:
        assert lenient.error_lines == [line] and not report.exists()


@pytest.mark.parametrize(
    ("name", "mutate", "expect"),
    [
        ("integer_image_ids", edit_json("annotations/val.json", _integer_ids), "keyframes"),
        ("no_raw_annotations", remove("raw_annotations"), "none for SL14_R1, SL18_R1, SL18_R2"),
        (
            "recording_without_annotations",
            _spare_recording,
            "recordings without any keyframe: spare",
        ),
        ("only_val_json", remove("annotations/train.json"), "keyframes"),
    ],
)
def test_inputs_that_are_fine(
    cli: Cli, name: str, mutate: Mutation, expect: str, broken: Path, tmp_path: Path
) -> None:
    before = cli.run(["data", "inspect", broken, f"out={tmp_path / 'before.json'}"])
    mutate(broken)
    result = cli.run(["data", "inspect", broken, f"out={tmp_path / 'r.json'}"])
    assert result.rc == 0 and result.stderr == "", result.stderr
    assert expect in result.stdout
    counts = (
        json.loads((tmp_path / f).read_text())["dataset"]["keyframes"] for f in ("before.json", "r.json")
    )
    n_before, n_after = counts
    # only_val_json: the raw annotations still hold the frames train.json had (as raw-only keyframes)
    assert n_after == n_before
    assert before.rc == 0


def test_unknown_dataset_name(cli: Cli, tmp_path: Path) -> None:
    result = cli.run(["data", "inspect", "thermal_v3", f"out={tmp_path / 'r.json'}"])
    cli.assert_clean_error(
        result, ["unknown dataset 'thermal_v3'", "did you mean 'thermal_v2'"], [tmp_path / "r.json"]
    )


# ---------------------------------------------------------------------------------------------
# train / eval / detect on a broken dataset


def _train(cli: Cli, root: Path, run_dir: Path, *extra: str) -> CliResult:
    return cli.run(["train", f"data.root={root}", f"run_dir={run_dir}", *cli.tiny_train, *extra])


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in DATASET_CASES
        if c.name in ("transposed_frames", "timestamps_in_seconds", "uint16_deci_kelvin")
    ],
    ids=str,
)
def test_train_refuses(cli: Cli, case: Case, broken: Path, tmp_path: Path) -> None:
    case.mutate(broken)
    cli.assert_clean_error(_train(cli, broken, tmp_path / "run"), case.names, outputs=[tmp_path / "run"])


def test_lenient_train_skips_an_unreadable_recording_its_split_file_lists(
    cli: Cli, broken: Path, tmp_path: Path
) -> None:
    """--lenient once failed the whole run: the dataset's splits/session.json lists the keyframes
    of the recording it skipped. Now they are dropped from the fold with a warning."""
    write_bytes("frames/SL18_R2.h5", lambda b: b[:5000])(broken)
    cli.assert_clean_error(
        _train(cli, broken, tmp_path / "strict"), ["SL18_R2.h5"], outputs=[tmp_path / "strict"]
    )
    result = _train(cli, broken, tmp_path / "run", "--lenient")
    assert result.rc == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "SL18_R2.h5: not a readable HDF5 file" in warnings[0] and warnings[0].endswith(
        "; skipping the recording and its keyframes"
    )
    assert any(
        "session.json: fold 'SL18->SL14' train has" in w and "dropping them from the fold" in w
        for w in warnings
    )
    assert (tmp_path / "run" / "last.pt").is_file()


def test_eval_refuses_a_broken_dataset(
    cli: Cli, broken: Path, tmp_path: Path, untrained_action_ckpt: Path
) -> None:
    rewrite_h5("SL14_R1", _transpose)(broken)
    out = tmp_path / "eval"
    result = cli.run(["eval", f"checkpoint={untrained_action_ckpt}", f"dataset={broken}", f"out={out}"])
    cli.assert_clean_error(result, ["SL14_R1.h5", "(transposed?)"], [out])


def _detect(cli: Cli, target: Path, action: Path, detector: Path, out: Path, *extra: str) -> CliResult:
    args = ["detect", target, f"checkpoint={action}", f"detector={detector}", f"out={out}", "animation=none"]
    return cli.run([*args, *extra])


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in DATASET_CASES
        if c.name
        in (
            "timestamps_in_seconds",
            "timestamps_shuffled",
            "timestamps_duplicated",
            "transposed_frames",
            "zero_byte_h5",
        )
    ],
    ids=str,
)
def test_detect_refuses(
    cli: Cli,
    case: Case,
    broken: Path,
    tmp_path: Path,
    untrained_action_ckpt: Path,
    untrained_detector_ckpt: Path,
) -> None:
    case.mutate(broken)
    out = tmp_path / "detect"
    target = broken / "frames" / "SL18_R2.h5"
    result = _detect(cli, target, untrained_action_ckpt, untrained_detector_ckpt, out)
    cli.assert_clean_error(result, case.names, [out])


def test_lenient_detect_counts_the_repeated_frames_it_drops(
    cli: Cli, broken: Path, tmp_path: Path, untrained_action_ckpt: Path, untrained_detector_ckpt: Path
) -> None:
    """Frames dropped for a repeated timestamp once vanished: the summary said 0 duplicates."""
    rewrite_h5("SL18_R2", _repeat)(broken)
    out = tmp_path / "detect"
    target = broken / "frames" / "SL18_R2.h5"
    result = _detect(cli, target, untrained_action_ckpt, untrained_detector_ckpt, out, "--lenient")
    assert result.rc == 0, result.stderr
    assert "5 frame(s) repeat an earlier timestamp" in result.stderr
    (rec,) = json.loads((out / "summary.json").read_text())["recordings"]
    assert rec["counters"]["duplicates"] == 5 and rec["counters"]["frames_in"] == rec["frames"] + 5


def test_lenient_detect_skips_the_bad_recording(
    cli: Cli, broken: Path, tmp_path: Path, untrained_action_ckpt: Path, untrained_detector_ckpt: Path
) -> None:
    rewrite_h5("SL18_R2", _seconds)(broken)
    remove("frames/SL14_R1.h5")(broken)
    out = tmp_path / "detect"
    result = _detect(cli, broken, untrained_action_ckpt, untrained_detector_ckpt, out, "--lenient")
    assert result.rc == 0, result.stderr
    assert "SL18_R2.h5: 'timestamps' are not milliseconds" in result.stderr and "skipping it" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [r["recording_id"] for r in summary["recordings"]] == ["SL18_R1"]


# ---------------------------------------------------------------------------------------------
# Command lines: bad keys, values, names and files, each refused before any output is written


@dataclasses.dataclass(frozen=True)
class ArgCase:
    """A command line that must fail cleanly, naming ``names``; ``{tmp}`` is the test's directory,
    ``{ckpt}`` an action checkpoint."""

    name: str
    args: tuple[str, ...]
    names: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


ARG_CASES = [
    ArgCase(
        "preset_typo",
        ("cfg", "config=thermal_net_lve"),
        ("thermal_net_lve", "did you mean 'thermal_net_live'"),
    ),
    ArgCase("cfg_bad_value", ("cfg", "optim.lr=-1"), ("optim.lr",)),
    ArgCase("cfg_unknown_key", ("cfg", "optim.epoch=3"), ("optim.epoch", "did you mean 'epochs'")),
    ArgCase("help_of_unknown_command", ("trian", "--help"), ("trian", "did you mean 'train'")),
    ArgCase(
        "shipped_name_typo",
        ("eval", "checkpoint=thermal_net_liv", "out={tmp}/e"),
        ("did you mean 'thermal_net_live'",),
    ),
    ArgCase(
        "detect_detector_typo",
        ("detect", "{tmp}/none.h5", "detector=person_detektor", "out={tmp}/d"),
        ("person_detektor",),
    ),
    ArgCase(
        "export_weights_to_onnx_path",
        ("export", "{ckpt}", "format=weights", "out={tmp}/x.onnx"),
        ("x.onnx", "must end in .pt"),
    ),
    ArgCase("export_unknown_format", ("export", "{ckpt}", "format=pth"), ("format",)),
    ArgCase("baseline_unknown_kind", ("baseline", "kind=svm", "run_dir={tmp}/b"), ("kind",)),
    ArgCase("pretrain_bad_value", ("pretrain", "optim.epochs=0", "run_dir={tmp}/p"), ("optim.epochs",)),
    ArgCase("eval_smoothing_bad", ("eval", "{ckpt}", "smooth_s=-1", "out={tmp}/e"), ("smooth_s",)),
]


@pytest.mark.parametrize("case", ARG_CASES, ids=str)
def test_command_lines_refused(cli: Cli, case: ArgCase, tmp_path: Path, untrained_action_ckpt: Path) -> None:
    args = [a.format(tmp=tmp_path, ckpt=untrained_action_ckpt) for a in case.args]
    outputs = [tmp_path / n for n in ("e", "d", "b", "p", "p_pretrain", "x.onnx")]
    cli.assert_clean_error(cli.run(args), case.names, outputs)
