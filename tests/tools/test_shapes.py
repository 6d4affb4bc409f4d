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

from shapes import (CLASSES, SEG_CLASSES, draw_image,
                                            make_shapes_dataset, mask_to_polygons, write_split)

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
    # One to three shapes an image, two or more in most (92% of the demo's images).
    assert all(coco.getAnnIds(imgIds=[i]) for i in coco.getImgIds())
    assert len(coco.getAnnIds()) >= 1.5 * num
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


def test_classes_choose_the_shapes_and_their_ids(tmp_path):
    make_shapes_dataset(str(tmp_path), num_train=4, num_val=1, size=64,
                        classes=('ellipse', 'ring'))
    coco = COCO(str(tmp_path / 'annotations' / 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == ['ellipse', 'ring']
    assert {ann['category_id'] for ann in coco.loadAnns(coco.getAnnIds())} <= {1, 2}
    for name in os.listdir(tmp_path / 'labels' / 'train'):
        labels = cv2.imread(str(tmp_path / 'labels' / 'train' / name), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(labels).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize('classes', [('square', ), (), ('ring', 'ring')])
def test_unknown_or_repeated_classes_are_refused(classes, tmp_path):
    with pytest.raises(ValueError, match='classes must be distinct names'):
        write_split(str(tmp_path), 'train', 1, classes=classes)


def _fill_ratios(min_visible: float) -> list:
    """Each rectangle's visible area over its convex hull's, in 20 drawings."""
    ratios = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        _, instances, labels = draw_image(rng, 64, 3, 24, 48, ('rectangle', ),
                                          min_visible=min_visible)
        for k in range(1, len(labels) + 1):
            points = np.argwhere(instances == k)[:, ::-1].astype(np.int32)
            hull = cv2.contourArea(cv2.convexHull(points)) + 0.5 * len(cv2.convexHull(points))
            ratios.append(len(points) / max(hull, 1.0))
    return ratios


def test_min_visible_bounds_how_much_a_shape_may_hide():
    # Nothing may be hidden: every rectangle stays whole (convex).
    assert min(_fill_ratios(1.0)) > 0.85
    # Anything may be hidden: some rectangle loses a large part to a later one.
    assert min(_fill_ratios(0.0)) < 0.6


def test_demo_configs_use_the_generator_classes():
    from mmengine.config import Config
    det = Config.fromfile(os.path.join(ROOT, 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'))
    seg = Config.fromfile(os.path.join(ROOT, 'configs/demo/fpn_crossformer-demo_shapes.py'))
    assert tuple(det.metainfo['classes']) == CLASSES
    assert det.model.roi_head.bbox_head.num_classes == len(CLASSES)
    assert tuple(seg.metainfo['classes']) == SEG_CLASSES
    assert seg.model.decode_head.num_classes == len(SEG_CLASSES)


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
