"""Resuming a run killed with SIGKILL (tools/train.py --resume CHECKPOINT) on the semantic FPN
demo config and a tiny shapes dataset: the weights of the uninterrupted run. Distributed runs:
tests/tools/test_dist_exit.py."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from shapes import data_root_options, make_shapes_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = 'configs/demo/fpn_crossformer-demo_shapes.py'
MAX_ITERS, INTERVAL = 8, 2


@pytest.fixture(scope='module')
def options(tmp_path_factory):
    data_root = str(tmp_path_factory.mktemp('shapes')) + '/'
    make_shapes_dataset(data_root, num_train=8, num_val=2, size=64)
    options = data_root_options(Config.fromfile(os.path.join(ROOT, CONFIG)), data_root)
    options.update({'train_cfg.max_iters': MAX_ITERS, 'train_cfg.val_interval': MAX_ITERS,
                    'train_dataloader.batch_size': 2,
                    'default_hooks.checkpoint.interval': INTERVAL,
                    'default_hooks.logger.interval': 1})
    return [f'{k}={v}' for k, v in options.items()]


def train_cmd(work_dir, options, *extra):
    return [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
            '--cfg-options', *options, *extra]


def train_steps(work_dir):
    """The iterations that the newest run in ``work_dir`` logged a training loss for."""
    path = sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json')))[-1]
    with open(path) as f:
        return [r['step'] for r in map(json.loads, f) if 'loss' in r]


def saved_iter(work_dir) -> int:
    """The iteration of the last complete checkpoint in ``work_dir``, 0 if none."""
    try:
        with open(work_dir / 'last_checkpoint') as f:
            return int(f.read().strip().rsplit('iter_', 1)[1].split('.')[0])
    except FileNotFoundError:
        return 0


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.mark.slow
def test_run_killed_mid_way_resumes_to_the_uninterrupted_weights(options, tmp_path):
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    subprocess.run(train_cmd(full, options), cwd=ROOT, check=True)

    # Its own session, so that the kill takes the dataloader workers along.
    proc = subprocess.Popen(train_cmd(killed, options), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 900
        while saved_iter(killed) == 0 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    resumed_from = saved_iter(killed)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < resumed_from < MAX_ITERS, 'the run ended before it could be killed'

    # The checkpoint named on the command line (tests/tools/test_bad_input.py resumes without).
    subprocess.run(train_cmd(killed, options, '--resume', str(killed / f'iter_{resumed_from}.pth')),
                   cwd=ROOT, check=True)
    assert train_steps(killed) == list(range(resumed_from + 1, MAX_ITERS + 1))
    expected = weights(full / f'iter_{MAX_ITERS}.pth')
    got = weights(killed / f'iter_{MAX_ITERS}.pth')
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)
