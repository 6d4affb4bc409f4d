"""A finished two-process run (tools/dist_train.sh, gloo on CPU) exits 0 every time, validation
included; a run in which one rank fails exits non-zero; a cancelled run leaves no process behind:
the demo-size Mask R-CNN on a tiny shapes dataset."""
import glob
import os
import signal
import subprocess
import textwrap
import time

import pytest
from mmengine.config import Config

from _tools import dist_env
from shapes import data_root_options, make_shapes_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = 'configs/demo/mask-rcnn_crossformer-demo_shapes.py'
RUNS = 5


@pytest.fixture(scope='module')
def options(tmp_path_factory):
    """Two iterations of one 64 px image a process, then validation on one image a process,
    with one persistent worker per dataloader (mmdet's dataset configs ask for persistent
    workers; IterBasedTrainLoop keeps its train iterator alive)."""
    data_root = str(tmp_path_factory.mktemp('shapes')) + '/'
    make_shapes_dataset(data_root, num_train=4, num_val=2, size=64)
    options = data_root_options(Config.fromfile(os.path.join(ROOT, CONFIG)), data_root)
    options.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                    'train_dataloader.batch_size': 1, 'train_dataloader.num_workers': 1,
                    'val_dataloader.batch_size': 1, 'val_dataloader.num_workers': 1,
                    'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1})
    return [f'{k}={v}' for k, v in options.items()]


def dist_train_cmd(config, work_dir, options) -> list:
    return ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir),
            '--cfg-options', *options]


def dist_train(config, work_dir, options) -> subprocess.CompletedProcess:
    return subprocess.run(dist_train_cmd(config, work_dir, options), cwd=ROOT, env=dist_env(),
                          capture_output=True, text=True, timeout=300)


def test_finished_two_process_runs_exit_0(options, tmp_path):
    failures = []
    for run in range(RUNS):
        work_dir = tmp_path / str(run)
        proc = dist_train(CONFIG, work_dir, options)
        if proc.returncode != 0:
            failures.append(f'run {run}: exit {proc.returncode}\n{proc.stderr[-3000:]}')
            continue
        assert (work_dir / 'iter_2.pth').is_file()
        log = open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()
        assert "'backend': 'gloo'" in log and 'GPU number: 2' in log
        assert 'Iter(val) [1/1]' in log and 'coco/bbox_mAP' in log
        assert 'terminate called' not in proc.stderr
    assert not failures, '\n'.join(failures)


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
