"""The whole pipeline on bundled synthetic data, on CPU: what ``make demo`` runs.

Writes the shapes dataset, trains and tests a small CrossFormer Mask R-CNN and semantic FPN with
``tools/train.py`` and ``tools/test.py``, then draws predictions on validation images with the
toolboxes' visualizers and plots the loss curves.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/shapes]
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMOS = {
    'mask-rcnn': osp.join(ROOT, 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'),
    'fpn': osp.join(ROOT, 'configs/demo/fpn_crossformer-demo_shapes.py'),
}
SCORES = {'mask-rcnn': ('coco/bbox_mAP', 'coco/segm_mAP'), 'fpn': ('mIoU', )}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--num-images', type=int, nargs=2, default=(2000, 100),
                        metavar=('TRAIN', 'VAL'))
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='more overrides for both configs, e.g. train_cfg.max_iters=20')
    parser.add_argument('--num-show', type=int, default=6, help='val images in the picture')
    return parser.parse_args(argv)


def tool(name: str, *args: str) -> None:
    """Run ``tools/<name>.py`` in a fresh process, as a user would."""
    cmd = [sys.executable, osp.join(ROOT, 'tools', f'{name}.py'), *args]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def data_options(config: str, data_root: str) -> List[str]:
    from mmengine.config import Config

    from shapes import data_root_options
    options = data_root_options(Config.fromfile(config), data_root.rstrip('/') + '/')
    return [f'{key}={value}' for key, value in options.items()]


def read_scalars(work_dir: str) -> List[dict]:
    """The records of the newest run's ``vis_data/scalars.json`` in ``work_dir``."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
                   key=osp.getmtime)
    if not paths:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')
    with open(paths[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_test_metrics(work_dir: str) -> dict:
    """The metrics that ``tools/test.py`` logged last in ``work_dir`` (``<time>/<time>.json``)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', '*.json')), key=osp.getmtime)
    if not paths:
        raise FileNotFoundError(f'no test log <time>/<time>.json under {work_dir}')
    with open(paths[-1]) as f:
        return json.load(f)


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_and_test(name: str, config: str, work_dir: str, options: List[str]) -> Dict[str, float]:
    """Train, test the last checkpoint (predictions in ``test/predictions.pkl``) and return
    the test scores."""
    tool('train', config, '--work-dir', work_dir, '--cfg-options', *options)
    test_dir = osp.join(work_dir, 'test')
    tool('test', config, last_checkpoint(work_dir), '--work-dir', test_dir,
         '--out', osp.join(test_dir, 'predictions.pkl'), '--cfg-options', *options)
    metrics = read_test_metrics(test_dir)
    return {key: metrics[key] for key in SCORES[name]}


def plot_losses(work_dirs: Dict[str, str], out_file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(work_dirs), figsize=(6 * len(work_dirs), 4), squeeze=False)
    for ax, (name, work_dir) in zip(axes[0], work_dirs.items()):
        records = [r for r in read_scalars(work_dir) if 'loss' in r]
        keys = ['loss'] + sorted({k for r in records for k in r
                                  if k.startswith(('loss_', 'decode.loss'))})
        for key in keys:
            ax.plot([r['step'] for r in records], [r[key] for r in records], '.-', label=key,
                    linewidth=2 if key == 'loss' else 1)
        ax.set(title=f'{name}: training loss', xlabel='iteration', yscale='log')
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def draw_predictions(configs: Dict[str, str], checkpoints: Dict[str, str], images: List[str],
                     options: Dict[str, List[str]], out_file: str) -> None:
    """One row per image: the image, Mask R-CNN's instances, semantic FPN's classes."""
    import mmcv
    scale = 3  # drawn larger, so that the labels stay legible
    originals = [mmcv.imrescale(mmcv.imread(path, channel_order='rgb'), scale,
                                interpolation='nearest')
                 for path in images]
    # One toolbox after the other: each init sets the default registry scope.
    detections = _det_panels(configs['mask-rcnn'], checkpoints['mask-rcnn'], images, originals,
                             _parse_options(options['mask-rcnn']), scale)
    segmentations = _seg_panels(configs['fpn'], checkpoints['fpn'], images, originals,
                                _parse_options(options['fpn']), scale)
    rows = [np.concatenate(row, 1) for row in zip(originals, detections, segmentations)]
    mmcv.imwrite(np.concatenate(rows, 0)[..., ::-1], out_file)


def _parse_options(options: List[str]) -> dict:
    from mmengine.config import DictAction
    parsed = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, parsed, options)
    return parsed.options


def _det_panels(config, checkpoint, images, originals, options, scale) -> List[np.ndarray]:
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_detector(config, checkpoint, device='cpu', cfg_options=options)
    visualizer = VISUALIZERS.build(dict(model.cfg.visualizer, name='demo_det'))
    visualizer.dataset_meta = model.dataset_meta
    panels = []
    for path, image in zip(images, originals):
        result = _upscaled(inference_detector(model, path), scale)
        visualizer.add_datasample('det', image, result, draw_gt=False, pred_score_thr=0.5)
        panels.append(visualizer.get_image())
    return panels


def _seg_panels(config, checkpoint, images, originals, options, scale) -> List[np.ndarray]:
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS
    model = init_model(config, checkpoint, device='cpu', cfg_options=options)
    visualizer = VISUALIZERS.build(dict(model.cfg.visualizer, name='demo_seg'))
    visualizer.dataset_meta = model.dataset_meta
    panels = []
    for path, image in zip(images, originals):
        result = _upscaled(inference_model(model, path), scale)
        visualizer.add_datasample('seg', image, result, draw_gt=False, with_labels=False)
        panels.append(visualizer.get_image())
    return panels


def _upscaled(sample, scale: int):
    """A prediction ``scale`` times larger, to draw on the enlarged image."""
    import torch.nn.functional as F
    from mmengine.structures import PixelData

    def resize(masks):  # (N, H, W) -> (N, scale * H, scale * W), nearest
        return F.interpolate(masks[:, None].float(), scale_factor=scale)[:, 0].to(masks.dtype)

    if 'pred_sem_seg' in sample:
        sample.pred_sem_seg = PixelData(data=resize(sample.pred_sem_seg.data))
    else:
        pred = sample.pred_instances
        pred.bboxes = pred.bboxes * scale
        if len(pred) and 'masks' in pred:
            pred.masks = resize(pred.masks)
    return sample


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    tool('make_shapes_dataset', args.data_root, '--num-train', str(args.num_images[0]),
         '--num-val', str(args.num_images[1]))
    work_dirs = {name: osp.join(args.work_dir, name) for name in DEMOS}
    options = {name: data_options(config, args.data_root) + list(args.cfg_options)
               for name, config in DEMOS.items()}
    scores = {name: train_and_test(name, config, work_dirs[name], options[name])
              for name, config in DEMOS.items()}

    losses_png = osp.join(args.work_dir, 'loss_curves.png')
    plot_losses(work_dirs, losses_png)
    predictions_png = osp.join(args.work_dir, 'predictions.png')
    images = sorted(glob.glob(osp.join(args.data_root, 'images', 'val', '*.png')))
    draw_predictions(DEMOS, {name: last_checkpoint(d) for name, d in work_dirs.items()},
                     images[:args.num_show], options, predictions_png)
    with open(osp.join(args.work_dir, 'scores.json'), 'w') as f:
        json.dump(scores, f, indent=2)

    print(f'\nDemo finished in {(time.time() - start) / 60:.1f} min.')
    for name, values in scores.items():
        print(f'  {name:10s}', '  '.join(f'{k} {v:g}' for k, v in values.items()),
              f'  (logs and checkpoints: {work_dirs[name]})')
    print(f'  predictions on val images: {predictions_png}')
    print(f'  loss curves: {losses_png}')


if __name__ == '__main__':
    main()
