"""The synthetic shapes dataset: deterministic, and annotations that the toolboxes can read."""
import filecmp
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from crossformer_mm.datasets.shapes import (CLASSES, SEG_CLASSES, make_shapes_dataset,
                                            mask_to_polygons)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = dict(num_train=6, num_val=3, size=64)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    make_shapes_dataset(str(root), seed=3, **SMALL)
    return root


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def test_same_seed_same_bytes_other_seed_other_images(shapes, tmp_path):
    make_shapes_dataset(str(tmp_path / 'again'), seed=3, **SMALL)
    make_shapes_dataset(str(tmp_path / 'other'), seed=4, **SMALL)
    files = _files(shapes)
    assert files == _files(tmp_path / 'again')
    _, mismatch, errors = filecmp.cmpfiles(shapes, tmp_path / 'again', files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(shapes, tmp_path / 'other', files, shallow=False)
    assert 'images/train/000000.png' in mismatch


@pytest.mark.parametrize('split, num', [('train', SMALL['num_train']), ('val', SMALL['num_val'])])
def test_coco_annotations_are_valid(shapes, split, num):
    coco = COCO(str(shapes / 'annotations' / f'instances_{split}.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.getImgIds()) == num
    assert len(coco.getAnnIds()) >= 2 * num  # at least two shapes per image
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann['image_id'])[0]
        mask = coco.annToMask(ann).astype(bool)
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0 and ann['area'] > 0
        assert x <= xs.min() and xs.max() < x + w and y <= ys.min() and ys.max() < y + h
        assert 0 <= x and x + w <= image['width'] and 0 <= y and y + h <= image['height']
        # The label PNG gives the instance's pixels the instance's class.
        labels = cv2.imread(str(shapes / 'labels' / split / image['file_name']),
                            cv2.IMREAD_UNCHANGED)
        assert (labels[mask] == ann['category_id']).mean() > 0.95


def test_label_pngs_hold_known_ids_and_match_the_images(shapes):
    seen = set()
    for split in ('train', 'val'):
        for name in os.listdir(shapes / 'labels' / split):
            labels = cv2.imread(str(shapes / 'labels' / split / name), cv2.IMREAD_UNCHANGED)
            image = cv2.imread(str(shapes / 'images' / split / name))
            assert labels.dtype == np.uint8 and labels.shape == image.shape[:2] == (64, 64)
            seen |= set(np.unique(labels).tolist())
    assert seen <= set(range(len(SEG_CLASSES))) and 0 in seen and len(seen) > 2


def test_polygons_keep_holes():
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 15, 1, -1)
    cv2.circle(ring, (20, 20), 7, 0, -1)
    polygons = mask_to_polygons(ring)
    assert len(polygons) == 1  # one polygon, the hole joined by a slit
    decoded = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, 40, 40)))
    assert decoded[20, 20] == 0 and decoded[20, 8] == 1
    assert abs(int(decoded.sum()) - int(ring.sum())) < 0.15 * ring.sum()


def test_cli_writes_the_dataset(tmp_path):
    subprocess.run([sys.executable, 'tools/make_shapes_dataset.py', str(tmp_path), '--num-train',
                    '2', '--num-val', '1', '--size', '48'], cwd=ROOT, check=True)
    assert len(os.listdir(tmp_path / 'images' / 'train')) == 2
    assert (tmp_path / 'annotations' / 'instances_val.json').is_file()
