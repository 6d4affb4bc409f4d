"""tools/demo.py (what ``make demo`` runs) end to end, cut to two iterations on six images: both
demo configs train through tools/train.py and are tested through tools/test.py."""
import glob
import json
import math
import os
import subprocess
import sys

import cv2
import mmengine
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_demo_writes_scores_and_pictures(tmp_path):
    work_dir, data_root = tmp_path / 'demo', tmp_path / 'shapes'
    subprocess.run([sys.executable, 'tools/demo.py', '--work-dir', str(work_dir), '--data-root',
                    str(data_root), '--num-images', '4', '2', '--num-show', '2', '--cfg-options',
                    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                    'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2'],
                   cwd=ROOT, check=True)
    assert len(os.listdir(data_root / 'images' / 'train')) == 4
    with open(work_dir / 'scores.json') as f:
        scores = json.load(f)
    assert set(scores) == {'mask-rcnn', 'fpn'}
    assert set(scores['mask-rcnn']) == {'coco/bbox_mAP', 'coco/segm_mAP'}
    assert set(scores['fpn']) == {'mIoU'}
    # The scores are those that tools/test.py logged for each model, finite numbers.
    for name, values in scores.items():
        logged = sorted(glob.glob(str(work_dir / name / 'test' / '*' / '*.json')))
        with open(logged[-1]) as f:
            metrics = json.load(f)
        assert values == {key: metrics[key] for key in values}
        assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
        # Each demo config trained to its last checkpoint, which was tested.
        assert (work_dir / name / 'last_checkpoint').read_text().strip() == \
            str(work_dir / name / 'iter_2.pth')
        # One prediction per val image, for the whole 64 x 64 image.
        predictions = mmengine.load(work_dir / name / 'test' / 'predictions.pkl')
        assert sorted(p['img_path'].rsplit('/', 1)[1] for p in predictions) == \
            sorted(os.listdir(data_root / 'images' / 'val'))
        for prediction in predictions:
            if name == 'fpn':
                assert prediction['pred_sem_seg']['data'].shape == (1, 64, 64)
            else:
                boxes = prediction['pred_instances']['bboxes']
                assert boxes.shape[1] == 4 and bool((boxes >= 0).all() and (boxes <= 64).all())
                masks = prediction['pred_instances']['masks']
                assert len(masks) == len(boxes)
    # Two val images, each drawn 3x larger: the image, Mask R-CNN's and the FPN's predictions.
    predictions = cv2.imread(str(work_dir / 'predictions.png'))
    assert predictions.shape == (2 * 3 * 64, 3 * 3 * 64, 3)
    losses = cv2.imread(str(work_dir / 'loss_curves.png'))
    assert losses is not None and losses.shape[1] > losses.shape[0]
