"""Distributed training and testing in two processes on CPU (tools/dist_train.sh and
dist_test.sh, gloo): a finished run exits 0, validation included; a run in which one rank fails
exits non-zero; a cancelled run leaves no process behind: the demo-size Mask R-CNN on a tiny
shapes dataset."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import textwrap
import time

import mmengine
import pytest
from mmengine.config import Config

from crossformer_mm.checkpoint import read_checkpoint
from _tools import dist_env
from shapes import data_root_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'


@pytest.fixture(scope='module')
def options(data_root):
    """Two iterations of one 64 px image a process, then validation on one image a process,
    with one persistent worker per dataloader (mmdet's dataset configs ask for persistent
    workers; IterBasedTrainLoop keeps its train iterator alive)."""
    options = data_root_options(Config.fromfile(os.path.join(ROOT, CONFIG)), data_root)
    options.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                    'train_dataloader.batch_size': 1, 'train_dataloader.num_workers': 1,
                    'val_dataloader.batch_size': 1, 'val_dataloader.num_workers': 1,
                    'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1})
    return [f'{k}={v}' for k, v in options.items()]


def dist_train_cmd(config, work_dir, options, *extra) -> list:
    return ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir), *extra,
            '--cfg-options', *options]


def dist_train(config, work_dir, options, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(dist_train_cmd(config, work_dir, options, *extra), cwd=ROOT,
                          env=dist_env(), capture_output=True, text=True, timeout=300)


def scalars(work_dir) -> list:
    """The records of the run's vis_data/scalars.json."""
    with open(glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))[0]) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_two_process_training_then_testing_exit_0(data_root, options, tmp_path):
    """tools/dist_train.sh with --auto-scale-lr, validation included, then tools/dist_test.sh
    of its checkpoint. The learning rate scaled to 2 processes of 1 image states the world
    size; the test's predictions are gathered from both processes."""
    proc = dist_train(CONFIG, tmp_path, options + ['auto_scale_lr.base_batch_size=16'],
                      '--auto-scale-lr')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'terminate called' not in proc.stderr
    checkpoint = read_checkpoint(str(tmp_path / 'iter_2.pth'))
    cfg = Config.fromstring(checkpoint['meta']['cfg'], '.py')
    assert (cfg.launcher, cfg.env_cfg.dist_cfg.backend) == ('pytorch', 'gloo')
    assert {group['initial_lr'] for group in checkpoint['optimizer']['param_groups']} == \
        {1e-3 * 2 / 16}
    records = scalars(tmp_path)
    assert [r['step'] for r in records if 'loss' in r] == [1, 2]
    assert len([r for r in records if 'coco/bbox_mAP' in r]) == 1  # the validation

    out = tmp_path / 'test' / 'predictions.pkl'
    proc = subprocess.run(['bash', 'tools/dist_test.sh', CONFIG, str(tmp_path / 'iter_2.pth'),
                           '2', '--work-dir', str(tmp_path / 'test'), '--out', str(out),
                           '--cfg-options', *options],
                          cwd=ROOT, env=dist_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(osp.basename(p['img_path']) for p in mmengine.load(out)) == \
        sorted(os.listdir(osp.join(data_root, 'images', 'val')))
    # mmengine's LoggerHook dumps the test metrics from every rank into the same file at once
    # (no rank check in after_test_epoch): its first JSON document is the metrics, whatever
    # the other rank's write left behind it.
    with open(glob.glob(str(tmp_path / 'test' / '*' / '*.json'))[0]) as f:
        metrics, _ = json.JSONDecoder().raw_decode(f.read())
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)


@pytest.mark.slow
def test_a_failing_rank_fails_the_run(options, tmp_path):
    """Rank 1 cannot read its annotation file, while rank 0 goes on to train."""
    config = tmp_path / 'rank1_fails.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = {os.path.join(ROOT, CONFIG)!r}
        import os
        if os.environ.get('RANK') == '1':
            train_dataloader = dict(dataset=dict(ann_file='annotations/missing.json'))
        '''))
    proc = dist_train(str(config), tmp_path / 'work', options)
    assert proc.returncode == 1, proc.stderr[-3000:]
    # Rank 1's one-line error names the file; rank 0 reports nothing of it.
    errors = [line for line in proc.stderr.splitlines() if 'missing.json' in line]
    assert len(errors) == 1 and errors[0].startswith('error: CocoDataset cannot load '
                                                     'annotation file '), errors


@pytest.mark.slow
def test_a_cancelled_run_leaves_no_process_behind(options, tmp_path):
    """SIGTERM to dist_train.sh, as a scheduler cancelling the job sends it, reaches torchrun,
    which stops the training processes (and they their dataloader workers)."""
    cmd = dist_train_cmd(CONFIG, tmp_path, options + ['train_cfg.max_iters=10000'])
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dist_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while 'Iter(train)' not in read_log(tmp_path) and time.time() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) != 0
        while running(tmp_path) and time.time() < deadline:  # workers notice within seconds
            time.sleep(0.2)
        assert not running(tmp_path), 'processes of the cancelled run are still running'
    finally:
        for pid in running(tmp_path):
            os.kill(pid, signal.SIGKILL)


def read_log(work_dir) -> str:
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    return open(logs[0]).read() if logs else ''


def running(work_dir) -> list:
    """The processes whose command line names ``work_dir``: launcher, ranks, workers."""
    pids = []
    for cmdline in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(cmdline, 'rb') as f:
                if str(work_dir).encode() in f.read():
                    pids.append(int(cmdline.split('/')[2]))
        except OSError:  # ended meanwhile
            pass
    return pids
