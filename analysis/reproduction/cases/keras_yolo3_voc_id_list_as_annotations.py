"""Training from VOC's image-id list instead of the repository's annotation file.

keras-yolo3's ``train.py`` reads ``annotation_path`` as one row per image: the image path
followed by its boxes as ``x_min,y_min,x_max,y_max,class_id`` groups. A user pointed it at
VOC's ``ImageSets/Main/train.txt``, which holds bare image ids, so the loader tried to open
``'000012\\n'`` as an image file and stopped with ``FileNotFoundError``. The fix is the
documented format: one line per image written from the VOC XML annotations (what the
repository's ``voc_annotation.py`` produces), which the loader then parses into boxes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.dom import minidom

import numpy as np
import torch

from analysis.reproduction.case import CaseContext, Comparison, ReproCase, case
from analysis.reproduction.comparators import exact_check

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle")


def voc_dataset(seed: int, n_images: int = 4) -> dict:
    """A small VOC tree in memory: JPEG images by path, XML annotations by id, and the
    ImageSets id list."""
    rng = np.random.default_rng(seed)
    ids = [f"{12 + 5 * i:06d}" for i in range(n_images)]
    images, xmls = {}, {}
    for image_id in ids:
        images[f"VOC2007/JPEGImages/{image_id}.jpg"] = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            x1, y1 = (int(v) for v in rng.integers(0, 20, 2))
            x2, y2 = x1 + int(rng.integers(5, 25)), y1 + int(rng.integers(5, 10))
            name = CLASSES[int(rng.integers(0, len(CLASSES)))]
            objects.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
                           f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
        xmls[image_id] = f"<annotation><filename>{image_id}.jpg</filename>{''.join(objects)}</annotation>"
    return {"images": images, "xmls": xmls, "imagesets": "".join(f"{i}\n" for i in ids)}


def voc_annotation_lines(data: dict) -> str:
    """voc_annotation.py: one row per image, path then x_min,y_min,x_max,y_max,class_id groups."""
    rows = []
    for image_id in data["imagesets"].split():
        root = ET.fromstring(data["xmls"][image_id])
        boxes = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            coords = [box.find(k).text for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes.append(",".join(coords + [str(CLASSES.index(obj.find("name").text))]))
        rows.append(" ".join([f"VOC2007/JPEGImages/{image_id}.jpg", *boxes]) + "\n")
    return "".join(rows)


def training_boxes(data: dict, annotation_text: str) -> torch.Tensor:
    """train.py's data generator: each row's first field is opened as the image, the rest are
    boxes. Returns (image index, x1, y1, x2, y2, class) per box."""
    out = []
    for index, line in enumerate(annotation_text.splitlines(keepends=True)):
        fields = line.split(" ")
        if fields[0] not in data["images"]:
            raise FileNotFoundError(f"[Errno 2] No such file or directory: {fields[0]!r}")
        for group in fields[1:]:
            out.append([index, *(int(v) for v in group.split(","))])
    return torch.tensor(out, dtype=torch.int64).reshape(-1, 6)


def boxes_from_xml(data: dict) -> torch.Tensor:
    """Independent reading: every object's box and class index straight from the XML (minidom)."""
    out = []
    for index, image_id in enumerate(data["imagesets"].split()):
        doc = minidom.parseString(data["xmls"][image_id])
        for obj in doc.getElementsByTagName("object"):
            value = lambda tag: obj.getElementsByTagName(tag)[0].firstChild.data  # noqa: E731
            out.append([index, *(int(value(t)) for t in ("xmin", "ymin", "xmax", "ymax")),
                        CLASSES.index(value("name"))])
    return torch.tensor(out, dtype=torch.int64).reshape(-1, 6)


@case(
    id="keras_yolo3_voc_id_list_as_annotations",
    title="VOC's image-id list passed as the annotation file: the loader opens '000012\\n' as an image",
    issues=["https://github.com/qqwweee/keras-yolo3/issues/55"],
    labels={"stage": "data_pipeline", "manifestation": "basic", "impact": "crash", "root_cause": "corrupt_data"},
    reference="each object's box and class index read directly from the VOC XML annotations (minidom)",
    reference_kind="implementation",
    defect_class="annotation file in the wrong format",
    mechanism="data loading",
    evidence={
        "reported": "Running train.py on VOC2007 stopped with FileNotFoundError for a file named by a bare "
                    "image id with its newline; the reporter had used ImageSets/Main/train.txt as the "
                    "annotation file and asked what that file should be.",
        "diagnosis": "Another user read train.py and saw it expects image paths; the maintainer replied that "
                     "the README defines the file: one row per image holding the image path and its boxes "
                     "(the excerpt of the thread we could read ends with that reply).",
        "fix": "The maintainer's reply (third comment) points to the documented row format; for VOC the "
               "repository's voc_annotation.py writes it from the XML annotations, which is how a later "
               "thread on the same error (#96) ended.",
        "model": "A small in-memory VOC tree: feeding the id list to the loader raises FileNotFoundError on "
                 "'000012\\n'; rows written from the XML in the documented format give exactly the boxes "
                 "and classes read independently from the XML.",
    },
)
class VocIdListAsAnnotations(ReproCase):
    expect_raises = (FileNotFoundError,)

    def inputs(self, ctx: CaseContext) -> dict:
        return voc_dataset(ctx.seed)

    def reference(self, ctx: CaseContext, data: dict) -> torch.Tensor:
        return boxes_from_xml(data)

    def buggy(self, ctx: CaseContext, data: dict) -> torch.Tensor:
        return training_boxes(data, data["imagesets"])

    def fixed(self, ctx: CaseContext, data: dict) -> torch.Tensor:
        return training_boxes(data, voc_annotation_lines(data))

    def compare(self, ctx: CaseContext, reference: torch.Tensor, candidate: torch.Tensor, data: dict) -> Comparison:
        return exact_check(candidate, reference, "boxes")
