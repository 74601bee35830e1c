from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermact.data.annotations import ClassList, load_classes, load_coco, load_raw
from thermact.errors import DataError, ProblemLog
from thermact.ops.boxes import xyxy_to_yolo, yolo_to_xyxy

CLASSES = ClassList(("sitting", "standing", "walking"))


def _coco(tmp_path: Path, images: list[dict], annotations: list[dict]) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    return path


def _img(i: int = 0) -> dict:
    return {
        "id": f"R1_{1000 + i}",
        "sensor_id": "R1",
        "timestamp": 1000 + i,
        "frame_idx": i,
        "width": 60,
        "height": 40,
    }


def _ann(i: int = 0, **kw: object) -> dict:
    ann = {"id": i, "image_id": "R1_1000", "bbox": [0.5, 0.5, 0.2, 0.25], "category_id": 1, "object_id": i}
    ann.update(kw)
    return ann


def test_class_list_comes_from_the_file(bundled_root: Path) -> None:
    classes = load_classes(bundled_root / "annotations" / "class_mapping.json")
    assert len(classes) == 14  # no padding to 16
    assert classes.names[3] == "lying down-lying with risk"
    assert classes.id_of("lower position-crouching") == 12


def test_real_coco_files(bundled_root: Path) -> None:
    classes = load_classes(bundled_root / "annotations" / "class_mapping.json")
    train = load_coco(bundled_root / "annotations" / "train.json", classes, split_name="train")
    val = load_coco(bundled_root / "annotations" / "val.json", classes, split_name="val")
    assert (len(train), len(val)) == (314, 73)
    assert sum(len(k.persons) for k in train) == 405
    assert sum(len(k.persons) for k in val) == 95
    first = next(k for k in train if k.keyframe_id == "SL14_R1_1760482260170")
    assert first.recording_id == "SL14_R1" and first.timestamp_ms == 1760482260170
    person = first.persons[0]
    assert person.label == 1 and person.name == "standing" and person.track_id == 0
    # YOLO [0.35703, 0.56108, 0.214, 0.158] over 60x40 in pixels
    np.testing.assert_allclose(person.xyxy, [15.0016663, 19.2833325, 27.8416663, 25.6033325], atol=1e-6)


def test_yolo_xyxy_round_trip_exact_on_real_boxes(bundled_root: Path) -> None:
    anns = json.loads((bundled_root / "annotations" / "train.json").read_text())["annotations"]
    yolo = np.array([a["bbox"] for a in anns], dtype=np.float64)
    back = xyxy_to_yolo(yolo_to_xyxy(yolo, 60, 40), 60, 40)
    np.testing.assert_allclose(back, yolo, rtol=0, atol=1e-12)


def test_raw_files_keep_hot_objects_and_furniture(bundled_root: Path) -> None:
    classes = load_classes(bundled_root / "annotations" / "class_mapping.json")
    kfs = load_raw(bundled_root / "raw_annotations" / "SL14_R1_annotation.json", classes)
    assert len(kfs) == 46
    assert sum(len(k.persons) for k in kfs) == 92
    kinds = {(b.kind, b.name) for k in kfs for b in k.others}
    assert kinds == {("object", "laptop"), ("object", "water kettle"), ("furniture", "chair")}
    assert sum(1 for k in kfs for b in k.others if b.name == "water kettle") == 46
    assert all(b.label is None for k in kfs for b in k.others)


def test_slightly_overhanging_box_is_clipped(tmp_path: Path) -> None:
    path = _coco(tmp_path, [_img()], [_ann(bbox=[0.5, 0.05, 0.2, 0.11])])  # y1 = -0.2 px
    (kf,) = load_coco(path, CLASSES)
    assert kf.persons[0].xyxy[1] == 0.0


@pytest.mark.parametrize(
    ("images", "annotations", "message"),
    [
        ([_img()], [_ann(category_id=7)], r"annotations\[0\] \(id 0, image 'R1_1000'\): unknown class id 7"),
        ([_img()], [_ann(category_id=1, category_name="sitting")], r"disagrees with class id 1"),
        ([_img()], [_ann(bbox=[0.95, 0.5, 0.3, 0.2])], r"annotations\[0\].*lies off the 60x40 frame"),
        ([_img()], [_ann(bbox=[0.5, 0.5, 0.0, 0.2])], r"annotations\[0\].*zero or negative area"),
        ([_img()], [_ann(bbox=[0.5, float("nan"), 0.1, 0.2])], r"bbox must be 4 finite numbers"),
        ([_img()], [_ann(0), _ann(0, object_id=5)], r"annotations\[1\].*duplicate annotation id"),
        ([_img()], [_ann(0), _ann(1, object_id=0)], r"annotations\[1\].*duplicate object_id 0"),
        ([_img(), _img()], [], r"images\[1\]: duplicate image id 'R1_1000'"),
        ([_img()], [_ann(image_id="R9_1")], r"refers to an unknown image"),
    ],
)
def test_bad_coco_records_are_named(tmp_path: Path, images: list, annotations: list, message: str) -> None:
    path = _coco(tmp_path, images, annotations)
    with pytest.raises(DataError, match=message) as info:
        load_coco(path, CLASSES)
    assert "ann.json" in str(info.value)
    warnings: list[str] = []
    kfs = load_coco(path, CLASSES, ProblemLog(lenient=True, warn=warnings.append))
    assert len(warnings) == 1
    assert len(kfs) == 1  # the image survives; the bad record is skipped


def test_integer_image_ids(tmp_path: Path) -> None:
    """COCO exports number images 1..N per file: integer ids must find their annotations (they
    were all "unknown image" once), and become ``<recording>_<ms>`` keyframe ids, unique across files."""
    images = [{**_img(i), "id": i + 1} for i in range(3)]
    anns = [_ann(0, image_id=1), _ann(1, image_id=3, category_id=2), _ann(2, image_id=3, object_id=7)]
    kfs = load_coco(_coco(tmp_path, images, anns), CLASSES)
    assert [k.keyframe_id for k in kfs] == ["R1_1000", "R1_1001", "R1_1002"]
    assert [[p.label for p in k.persons] for k in kfs] == [[1], [], [2, 1]]
    # a string id "3" names the same image as the integer 3
    assert len(load_coco(_coco(tmp_path, images, [_ann(0, image_id="3")]), CLASSES)[2].persons) == 1
    # integer duplicates are caught, and so is a second image of the same frame
    with pytest.raises(DataError, match=r"images\[1\]: duplicate image id 1$"):
        load_coco(_coco(tmp_path, [images[0], {**images[1], "id": 1}], []), CLASSES)
    with pytest.raises(
        DataError, match=r"images\[1\] \(id 9\): same recording and timestamp as an earlier image"
    ):
        load_coco(_coco(tmp_path, [images[0], {**images[0], "id": 9}], []), CLASSES)
    for bad in (1.5, True, None, ""):
        with pytest.raises(DataError, match=r"images\[0\]: image id must be a string or an integer"):
            load_coco(_coco(tmp_path, [{**images[0], "id": bad}], []), CLASSES)
    with pytest.raises(DataError, match="refers to an unknown image"):
        load_coco(_coco(tmp_path, images, [_ann(0, image_id=True)]), CLASSES)


def test_malformed_json_line_and_unknown_subcategory(tmp_path: Path) -> None:
    good = {
        "data_id": "R1",
        "data_time": 5,
        "annotations": [
            {"bbox": [0.5, 0.5, 0.2, 0.2], "category": "person", "subcategory": "walking", "object_id": 0}
        ],
    }
    bad_cls = {
        "data_id": "R1",
        "data_time": 6,
        "annotations": [
            {"bbox": [0.5, 0.5, 0.2, 0.2], "category": "person", "subcategory": "flying", "object_id": 0}
        ],
    }
    path = tmp_path / "R1_annotation.json"
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps(bad_cls) + "\n")
    with pytest.raises(DataError, match=r"R1_annotation\.json:2: malformed JSON line"):
        load_raw(path, CLASSES)
    log = ProblemLog(lenient=True, warn=lambda _: None)
    kfs = load_raw(path, CLASSES, log)
    assert log.count == 2
    assert "R1_annotation.json:3 annotations[0]: unknown action class 'flying'" in log.problems[1]
    assert [len(k.persons) for k in kfs] == [1, 0]


def test_missing_and_invalid_json_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: annotation file not found"):
        load_coco(tmp_path / "nope.json", CLASSES)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        load_coco(bad, CLASSES)
    mapping = tmp_path / "class_mapping.json"
    mapping.write_text(json.dumps({"classes": ["a", "b"], "class_to_id": {"a": 1}}))
    with pytest.raises(DataError, match=r"class_to_id\['a'\] = 1 disagrees"):
        load_classes(mapping)
