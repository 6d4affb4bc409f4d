"""A small synthetic dataset of shapes, for running the whole pipeline without COCO or ADE20K.

Every image holds up to three shapes (two or three in most) of random size, colour and
rotation, possibly overlapping, on a textured background. By default they are rectangles,
triangles and rings (:data:`CLASSES`, the demo's classes); ellipses can be added
(:data:`SHAPES`, ``classes=``). Colours are random, so only the form tells the classes apart.
One drawing serves both tasks: the instance map it leaves is written as COCO instances (boxes
and polygon masks, what ``mmdet``'s ``CocoDataset`` reads) and as ADE20K-style label PNGs
(``0`` background, ``1..n`` the classes; ``mmseg``'s ``BaseSegDataset``).

Layout under the output directory::

    images/{train,val}/000000.png
    labels/{train,val}/000000.png
    annotations/instances_{train,val}.json

The output depends only on the seed and the other arguments: each image draws from its own
random generator seeded with ``(seed, split, index)``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: The shapes that the generator draws, and a colour for each.
SHAPES = {'rectangle': (220, 20, 60), 'ellipse': (0, 130, 230), 'triangle': (250, 170, 30),
          'ring': (120, 200, 60)}
#: The default classes, those of the demo configs. Ellipses are left out: in a few minutes of
#: training from scratch, segmentation models did not learn to tell them from rectangles.
CLASSES = ('rectangle', 'triangle', 'ring')
#: Semantic ids: ``0`` is the background, class ``i`` of :data:`CLASSES` is ``i + 1``.
SEG_CLASSES = ('background', ) + CLASSES
PALETTE = [SHAPES[name] for name in CLASSES]
SEG_PALETTE = [(0, 0, 0)] + PALETTE
SPLITS = ('train', 'val')

MIN_VISIBLE = 0.85  # a new shape may hide at most 15% of any shape drawn before it
MIN_AREA = 24      # pixels; smaller shapes are not drawn
TEXTURE = 15       # amplitude of the background texture, in grey levels


def _texture(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """Smooth noise with a random grating: float32 (size, size, channels) in about [-1, 1]."""
    cells = int(rng.integers(3, 9))
    noise = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).reshape(
        size, size, channels)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
    grating = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    return 0.7 * noise + 0.3 * grating[..., None]


def _background(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """A textured background and its base colour."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    return base + TEXTURE * _texture(rng, size, 3), base


def _colour(rng: np.random.Generator, avoid: np.ndarray, margin: float = 80) -> np.ndarray:
    """A random colour at least ``margin`` away (in some channel) from ``avoid``."""
    while True:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if np.abs(colour - avoid).max() >= margin:
            return colour


def _shape_mask(rng: np.random.Generator, name: str, size: int,
                min_size: int, max_size: int) -> np.ndarray:
    """The filled mask (uint8 0/1) of one random shape ``name`` (one of :data:`SHAPES`)."""
    mask = np.zeros((size, size), np.uint8)
    extent = rng.uniform(min_size, max_size)
    cx, cy = rng.uniform(extent / 2, size - extent / 2, 2)
    angle = rng.uniform(0, 360)
    if name == 'rectangle':
        w, h = extent * rng.uniform(0.5, 1.0, 2)
        box = cv2.boxPoints(((cx, cy), (w, h), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    elif name == 'ellipse':
        axes = (round(extent / 2), round(extent / 2 * rng.uniform(0.4, 0.8)))
        cv2.ellipse(mask, (round(cx), round(cy)), axes, angle, 0, 360, 1, -1)
    elif name == 'triangle':
        angles = np.deg2rad(angle + np.array([0, 120, 240]) + rng.uniform(-25, 25, 3))
        pts = np.stack([cx + extent / 2 * np.cos(angles), cy + extent / 2 * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    else:  # ring
        radius = extent / 2
        cv2.circle(mask, (round(cx), round(cy)), round(radius), 1, -1)
        cv2.circle(mask, (round(cx), round(cy)), round(radius * rng.uniform(0.4, 0.65)), 0, -1)
    return mask


def _bridge(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """One polygon for ``outer`` with ``hole`` cut out, joined by a zero-width slit.

    COCO polygons cannot have holes; walking into the hole along a slit and back gives the
    same region under even-odd filling, which pycocotools uses.
    """
    dist = ((outer[:, None] - hole[None]) ** 2).sum(-1)
    i, j = np.unravel_index(dist.argmin(), dist.shape)
    return np.concatenate([outer[:i + 1], hole[j:], hole[:j + 1], outer[i:]])


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` of a binary mask, holes included.

    They run through the centres of the mask's boundary pixels, so a polygon's fill is the mask
    less about half of its boundary.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    polygons = []
    for k, (_, _, first_hole, parent) in enumerate(hierarchy[0]):
        if parent >= 0:
            continue
        polygon, hole = contours[k][:, 0], first_hole
        while hole >= 0:
            polygon = _bridge(polygon, contours[hole][:, 0])
            hole = hierarchy[0][hole][0]
        if len(polygon) >= 3:
            # Contours run through pixel indices; COCO puts pixel centres at index + 0.5.
            polygons.append((polygon + 0.5).ravel().tolist())
    return polygons


def draw_image(rng: np.random.Generator, size: int, max_shapes: int, min_size: int,
               max_size: int, classes: Sequence[str] = CLASSES,
               min_visible: float = MIN_VISIBLE) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """One picture: the BGR image, its instance map (0 = background) and each instance's class
    (an index into ``classes``).

    Shapes are drawn one over the other; a shape that would hide too much of an earlier one, or
    be too small, is drawn again elsewhere (a few tries) or skipped.
    """
    image, base = _background(rng, size)
    instances = np.zeros((size, size), np.int32)
    labels: List[int] = []
    for _ in range(int(rng.integers(2, max_shapes + 1))):
        for _try in range(10):
            label = int(rng.integers(len(classes)))
            mask = _shape_mask(rng, classes[label], size, min_size, max_size).astype(bool)
            if mask.sum() < MIN_AREA:
                continue
            hidden = np.bincount(instances[mask], minlength=len(labels) + 1)[1:]
            visible = np.bincount(instances.ravel(), minlength=len(labels) + 1)[1:]
            if (visible - hidden >= min_visible * visible).all():
                break
        else:
            continue
        fill = _colour(rng, base) + TEXTURE / 2 * _texture(rng, size, 1)
        image[mask] = fill[mask]
        instances[mask] = len(labels) + 1
        labels.append(label)
    noise = rng.normal(0, 4, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), instances, labels


def _annotations(instances: np.ndarray, labels: List[int], image_id: int,
                 first_id: int) -> List[dict]:
    anns = []
    for k, label in enumerate(labels, 1):
        mask = instances == k
        polygons = mask_to_polygons(mask)
        if not polygons:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        anns.append(dict(id=first_id + len(anns), image_id=image_id, category_id=label + 1,
                         bbox=[x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                         area=float(mask.sum()), segmentation=polygons, iscrowd=0))
    return anns


def write_split(out_dir: str, split: str, num_images: int, seed: int = 0, size: int = 64,
                max_shapes: int = 3, min_size: Optional[int] = None,
                max_size: Optional[int] = None, classes: Sequence[str] = CLASSES,
                min_visible: float = MIN_VISIBLE) -> str:
    """Write one split's images, label PNGs and COCO json; return the json's path.

    Shapes span ``min_size`` to ``max_size`` pixels (default 3/8 and 3/4 of ``size``) before
    their aspect ratio is drawn; ``classes`` are names from :data:`SHAPES`, in label order.
    """
    unknown = set(classes) - set(SHAPES)
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f'classes must be distinct names from {list(SHAPES)}, got {classes}')
    min_size = min_size or size * 3 // 8
    max_size = max_size or size * 3 // 4
    split_id = SPLITS.index(split)
    for sub in (f'images/{split}', f'labels/{split}', 'annotations'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    images, anns = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_id, index])
        image, instances, labels = draw_image(rng, size, max_shapes, min_size, max_size, classes,
                                              min_visible)
        name = f'{index:06d}.png'
        cv2.imwrite(osp.join(out_dir, 'images', split, name), image)
        semantic = np.array([0] + [label + 1 for label in labels], np.uint8)[instances]
        cv2.imwrite(osp.join(out_dir, 'labels', split, name), semantic)
        images.append(dict(id=index, file_name=name, height=size, width=size))
        anns += _annotations(instances, labels, index, first_id=len(anns) + 1)
    coco = dict(images=images, annotations=anns,
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(classes)])
    path = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


def make_shapes_dataset(out_dir: str, num_train: int = 2000, num_val: int = 100, **kwargs
                        ) -> Dict[str, str]:
    """Write both splits (see :func:`write_split` for ``kwargs``); return the json paths."""
    return {split: write_split(out_dir, split, num, **kwargs)
            for split, num in zip(SPLITS, (num_train, num_val))}


def data_root_options(cfg, data_root: str) -> Dict[str, str]:
    """``--cfg-options`` that point a demo config (``configs/demo``) at another ``data_root``.

    Args:
        cfg: the loaded :class:`~mmengine.config.Config`; its own ``data_root`` is replaced in
            the dataloaders and in evaluators that read an annotation file.
    """
    options = {f'{loader}.dataset.data_root': data_root
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    for evaluator in ('val_evaluator', 'test_evaluator'):
        ann_file = cfg[evaluator].get('ann_file')
        if ann_file:
            options[f'{evaluator}.ann_file'] = osp.join(data_root,
                                                        osp.relpath(ann_file, cfg.data_root))
    return options
