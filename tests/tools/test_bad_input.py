"""The tools name what is wrong: a checkpoint that does not fit the model, checkpoints that
cannot be resumed, a config that does not parse, a bad process count, a conversion that would
overwrite its input."""
import errno
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import cli
from _tools import fails, tool
from shapes import data_root_options, make_shapes_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/fpn_crossformer-demo_shapes.py'


@pytest.fixture(scope='module')
def options(data_root):
    cfg = Config.fromfile(osp.join(ROOT, CONFIG))
    options = data_root_options(cfg, data_root)
    options.update({'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
                    'train_dataloader.persistent_workers': False,
                    'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
                    'default_hooks.logger.interval': 1})
    return [f'{k}={v}' for k, v in options.items()]


@pytest.fixture(scope='module')
def model_state():
    """The state dict of the demo segmentor, as a checkpoint of it holds it."""
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(Config.fromfile(osp.join(ROOT, CONFIG)).model)
    return model.state_dict()


# ----------------------------------------------------------------------------- tools/test.py
def logged_metrics(work_dir) -> dict:
    """What tools/test.py logged: ``<time>/<time>.json``."""
    [path] = glob.glob(str(work_dir / '*' / '*.json'))
    with open(path) as f:
        return json.load(f)


def test_a_checkpoint_that_fits_is_tested(data_root, model_state, options, tmp_path):
    """Its weights are the ones tested: a head that predicts class 2 everywhere has the share
    of class-2 pixels in the val labels as its pixel accuracy."""
    state = dict(model_state)
    state['decode_head.conv_seg.weight'] = torch.zeros_like(state['decode_head.conv_seg.weight'])
    state['decode_head.conv_seg.bias'] = torch.tensor([0., 0., 100., 0.])
    path = tmp_path / 'fits.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    cli.run_cli(tool('test').main, [CONFIG, str(path), '--work-dir', str(tmp_path),
                                    '--cfg-options', *options])
    labels = np.concatenate([cv2.imread(label, cv2.IMREAD_UNCHANGED).ravel() for label in
                             glob.glob(osp.join(data_root, 'labels', 'val', '*.png'))])
    labels = labels[labels < 4]   # the 4 classes; 255 is ignored
    # mmseg rounds to 2 decimals, in float32.
    assert logged_metrics(tmp_path)['aAcc'] == pytest.approx(
        round(100 * float(np.mean(labels == 2)), 2), abs=1e-5)


def test_a_foreign_checkpoint_is_refused_naming_its_keys(model_state, options, tmp_path, capsys):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                               'fc.weight': torch.zeros(10, 2048)}}, path)
    err = fails(capsys, 'test', CONFIG, str(path), '--work-dir', str(tmp_path),
                '--cfg-options', *options)
    # BatchNorm's num_batches_tracked may be missing, as mmengine has it.
    keys = [k for k in model_state if not k.endswith('num_batches_tracked')]
    assert len(keys) == 211
    assert err == (
        f'error: {path} does not fit the model of {CONFIG}: {len(keys)} missing keys: '
        f'{keys[0]}, {keys[1]}, {keys[2]}, ... ({len(keys) - 3} more); 2 unexpected keys: '
        'conv1.weight, fc.weight; pass --allow-partial to test it anyway')
    # With --allow-partial it is tested as mmengine would, with a warning.
    cli.run_cli(tool('test').main, [CONFIG, str(path), '--work-dir', str(tmp_path),
                                    '--allow-partial', '--cfg-options', *options])
    assert {'aAcc', 'mIoU'} <= set(logged_metrics(tmp_path))


def test_a_checkpoint_of_another_shape_is_refused(model_state, options, tmp_path, capsys):
    state = dict(model_state)
    state['decode_head.conv_seg.weight'] = torch.zeros(7, 64, 1, 1)
    del state['decode_head.conv_seg.bias']
    path = tmp_path / 'other.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    err = fails(capsys, 'test', CONFIG, str(path), '--work-dir', str(tmp_path),
                '--cfg-options', *options)
    assert err == (
        f'error: {path} does not fit the model of {CONFIG}: 1 missing key: '
        'decode_head.conv_seg.bias; 1 shape mismatch (checkpoint vs model): '
        'decode_head.conv_seg.weight (7, 64, 1, 1) vs (4, 64, 1, 1); pass --allow-partial to '
        'test it anyway')


# ---------------------------------------------------------------------------- tools/train.py
def train_steps(work_dir) -> list:
    """The iterations that the newest run in ``work_dir`` logged a training loss for."""
    path = sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json')))[-1]
    with open(path) as f:
        return [r['step'] for r in map(json.loads, f) if 'loss' in r]


def truncate(path) -> None:
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)


def train(work_dir, options, max_iters: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir), '--cfg-options',
         *options, f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
         'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3',
         *extra], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_resume_without_last_checkpoint_takes_the_newest_complete_one(options, tmp_path):
    assert train(tmp_path, options, 3).returncode == 0
    assert sorted(p.name for p in tmp_path.glob('iter_*.pth')) == ['iter_1.pth', 'iter_2.pth',
                                                                    'iter_3.pth']
    os.remove(tmp_path / 'last_checkpoint')
    truncate(tmp_path / 'iter_3.pth')
    run = train(tmp_path, options, 4, '--resume')
    assert run.returncode == 0, run.stderr
    assert f'Skipping {tmp_path}/iter_3.pth: ' in run.stdout
    assert f'Resuming from {tmp_path}/iter_2.pth (iteration 2, epoch 0), the newest complete ' \
        f'checkpoint in {tmp_path}' in run.stdout
    assert train_steps(tmp_path) == [3, 4]


def test_resume_refuses_to_overwrite_checkpoints_it_cannot_read(tmp_path, capsys):
    (tmp_path / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut short')
    assert fails(capsys, 'train', CONFIG, '--work-dir', str(tmp_path), '--resume') == (
        f'error: --resume: none of the 1 checkpoint files in {tmp_path} can be resumed from '
        '(iter_2.pth); pass --overwrite-checkpoints to train from the start anyway, '
        'overwriting them')
    train_tool = tool('train')
    assert train_tool.resume_checkpoint(str(tmp_path), overwrite=True) is None
    assert train_tool.resume_checkpoint(str(tmp_path / 'empty'), overwrite=False) is None


# ------------------------------------------------------------------------- data files
@pytest.mark.parametrize('workers', [0, 1])
def test_a_corrupt_label_map_stops_training_with_one_line(tmp_path, workers):
    """Also when a dataloader worker meets it: PyTorch re-raises the error with the worker's
    traceback as its message."""
    data_root = str(tmp_path / 'shapes') + '/'
    make_shapes_dataset(data_root, num_train=2, num_val=1, size=64)
    for label in glob.glob(osp.join(data_root, 'labels', 'train', '*.png')):
        with open(label, 'wb') as f:
            f.write(b'not a png')
    options = data_root_options(Config.fromfile(osp.join(ROOT, CONFIG)), data_root)
    options.update({'train_dataloader.batch_size': 1, 'train_dataloader.num_workers': workers,
                    'train_dataloader.persistent_workers': bool(workers)})
    run = train(tmp_path / 'work', [f'{k}={v}' for k, v in options.items()], 1)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf'error: sample [01] \({data_root}images/train/00000[01].png, '
                        rf'{data_root}labels/train/00000[01].png\): UnidentifiedImageError: .*',
                        last), last
    assert 'Traceback' not in run.stderr


# ------------------------------------------------------------------------- config syntax
@pytest.mark.parametrize('broken', ['config', 'base'])
def test_a_syntax_error_names_the_file_and_line(tmp_path, capsys, broken):
    base, config = tmp_path / 'base.py', tmp_path / 'config.py'
    good, bad = 'model = dict(\n    depth=1)\n', 'model = dict(\n    depth=1,,\n)\n'
    base.write_text(bad if broken == 'base' else good)
    config.write_text("_base_ = ['./base.py']\n" + (bad if broken == 'config' else 'x = 1\n'))
    path, line = (base, 2) if broken == 'base' else (config, 3)
    assert fails(capsys, 'train', str(config)) == \
        f'error: {path}:{line}: syntax error: invalid syntax: depth=1,,'


# ------------------------------------------------------------------------ dist_*.sh
@pytest.mark.parametrize('script, argv', [
    ('dist_train.sh', [CONFIG, '0']), ('dist_train.sh', [CONFIG, '2x']),
    ('dist_test.sh', [CONFIG, 'model.pth', '-1']), ('dist_test.sh', [CONFIG, 'model.pth', ''])])
def test_dist_scripts_check_the_process_count(script, argv):
    run = subprocess.run(['bash', f'tools/{script}', *argv], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 2
    assert run.stderr == ("error: GPUS, the number of processes, must be a positive integer, "
                          f"got '{argv[-1]}'\n")


# ---------------------------------------------------------------- tools/convert_checkpoint.py
def convert(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'tools/convert_checkpoint.py', *argv], cwd=ROOT,
                          capture_output=True, text=True)


def test_convert_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / 'crossformer-t.pth'
    torch.save({'model': {'head.weight': torch.zeros(2)}}, src)
    before = src.read_bytes()
    for dst in (src, tmp_path / '.' / 'crossformer-t.pth'):
        run = convert(str(src), str(dst))
        assert run.returncode == 1
        assert run.stderr == (f'error: the output {dst} is the input checkpoint; write the '
                              'converted one elsewhere (a directory gets <name>_converted.pth)\n')
    assert src.read_bytes() == before


@pytest.mark.parametrize('dst', ['existing', 'new/', 'new/deeper/'])
def test_convert_into_a_directory(tmp_path, dst):
    (tmp_path / 'existing').mkdir()
    out = tool('convert_checkpoint').output_path('ckpts/crossformer-t.pth', f'{tmp_path}/{dst}')
    assert out == osp.join(f'{tmp_path}/{dst}', 'crossformer-t_converted.pth')
    assert osp.isdir(osp.dirname(out))


def test_convert_into_a_directory_it_cannot_make(tmp_path):
    src = tmp_path / 'crossformer-t.pth'
    torch.save({'model': {'head.weight': torch.zeros(2)}}, src)
    (tmp_path / 'file').write_text('')
    run = convert(str(src), f'{tmp_path}/file/sub/')
    assert run.returncode == 1
    # The OS's error for a path through a file, as Python words it.
    error = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), f'{tmp_path}/file/sub/')
    assert run.stderr == f'error: {error}\n'
