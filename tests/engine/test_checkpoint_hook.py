"""AtomicCheckpointHook under kill -9: a toy model trained by mmengine's Runner in a child
process that SIGKILLs itself at each step of its checkpoint writes (inside a write, after part
of the bytes, and before each fsync, rename and removal), with ``max_keep_ckpts=1``."""
import builtins
import glob
import json
import multiprocessing
import os
import os.path as osp
import re
import signal
import tempfile
import traceback

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader

from crossformer_mm.engine import AtomicCheckpointHook, find_resume_checkpoint
from crossformer_mm.engine.checkpoint_hook import atomic_write

MAX_ITERS = 3
CHECKPOINT_FILE = re.compile(r'(iter_\d+\.pth|last_checkpoint)(\.part)?$')


class Toy(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=((out - targets)**2).mean()) if mode == 'loss' else out


class RecordStart(Hook):
    """Writes the iteration that training starts from (after resuming) to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def before_train(self, runner) -> None:
        with open(self.path, 'w') as f:
            f.write(str(runner.iter))


def train(work_dir: str, hook_type: str, resume_from=None, name='run') -> None:
    data = [dict(inputs=torch.arange(4.) + i, targets=torch.tensor([1., -1.]) * i)
            for i in range(8)]
    torch.manual_seed(0)  # the same initial weights in every run (the Runner seeds after)
    Runner(
        model=Toy(), work_dir=work_dir, experiment_name=f'{name}_{os.getpid()}',
        train_dataloader=DataLoader(data, batch_size=2, shuffle=False),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type=hook_type, interval=1, by_epoch=False,
                                           max_keep_ckpts=1)),
        custom_hooks=[RecordStart(osp.join(work_dir, 'start_iter'))],
        load_from=resume_from, resume=resume_from is not None,
        randomness=dict(seed=0), default_scope='mmengine').train()


class Faults:
    """Counts the checkpoint file operations of this process and SIGKILLs it at one of them."""

    def __init__(self, kill_at=None, keep_bytes=None, log=None) -> None:
        self.kill_at, self.keep_bytes, self.log, self.events = kill_at, keep_bytes, log, []

    def install(self) -> None:
        real_open, real_fsync, real_replace, real_remove = (builtins.open, os.fsync, os.replace,
                                                           os.remove)
        faults = self

        class File:

            def __init__(self, f, path):
                self.f, self.path = f, path

            def write(self, data):
                if faults.event('write', self.path) and faults.keep_bytes is not None:
                    self.f.write(data[:int(len(data) * faults.keep_bytes)])
                    self.f.flush()
                    faults.kill()
                return self.f.write(data)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def __getattr__(self, name):
                return getattr(self.f, name)

        def fault_open(file, mode='r', *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if 'w' in mode and CHECKPOINT_FILE.search(str(file)):
                return File(f, str(file))
            return f

        def fault_fsync(fd):
            # What the descriptor is open on: a file, or a directory (recorded with a '/').
            target = os.readlink(f'/proc/self/fd/{fd}')
            self.event('fsync', target + '/' * osp.isdir(target)) and self.kill()
            real_fsync(fd)

        def fault_replace(src, dst):
            self.event('replace', str(dst)) and self.kill()
            real_replace(src, dst)

        def fault_remove(path):
            if CHECKPOINT_FILE.search(str(path)):
                self.event('remove', str(path)) and self.kill()
            real_remove(path)

        builtins.open, os.fsync, os.replace, os.remove = (fault_open, fault_fsync, fault_replace,
                                                          fault_remove)

    def event(self, kind: str, path: str) -> bool:
        """Record an operation; True if the process is to die at it."""
        self.events.append((kind, osp.basename(path.rstrip('/')) + '/' * path.endswith('/')))
        return len(self.events) == self.kill_at

    def kill(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def save(self) -> None:
        with open(self.log, 'w') as f:
            json.dump(self.events, f)


class Children:
    """Trains in forked children of a spawned process (the zygote), one at a time.

    Not forked from the test process: a process whose autograd engine has started its device
    threads cannot run a backward pass in a forked child, and ``torch.library.opcheck`` in
    other tests of the same pytest worker does that (a backward pass on the meta device). The
    zygote is a fresh interpreter that has trained once on the CPU: the children inherit its
    imports and warm-up, and fork in milliseconds.
    """

    def __init__(self) -> None:
        self.conn, child_conn = multiprocessing.Pipe()
        self.zygote = multiprocessing.get_context('spawn').Process(
            target=_zygote, args=(child_conn, ), daemon=True)
        self.zygote.start()

    def run(self, work_dir, hook_type='AtomicCheckpointHook', faults=None,
            resume=False) -> int:
        """Train in a child; its exit status as ``os.waitpid`` gives it."""
        self.conn.send((work_dir, hook_type, faults, resume))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.zygote.join()


def _zygote(conn) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        train(tmp, 'CheckpointHook', name='warm_up')
    for request in iter(conn.recv, None):
        pid = os.fork()
        if pid == 0:
            _train_in_child(*request)
        conn.send(os.waitpid(pid, 0)[1])


def _train_in_child(work_dir, hook_type, faults, resume) -> None:
    code = 0
    try:
        torch.set_num_threads(1)
        if faults is not None:
            faults.install()
        train(work_dir, hook_type, find_resume_checkpoint(work_dir) if resume else None)
        if faults is not None and faults.log:
            faults.save()
    except BaseException:
        traceback.print_exc()
        code = 1
    os._exit(code)


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def weights(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def stored_iter(path: str) -> int:
    return torch.load(path, map_location='cpu', weights_only=True)['meta']['iter']


@pytest.fixture(scope='module')
def children():
    children = Children()
    yield children
    children.close()


@pytest.fixture(scope='module')
def reference(children, tmp_path_factory):
    """An uninterrupted run: its final weights and the operations of its checkpoint writes."""
    work_dir = str(tmp_path_factory.mktemp('reference'))
    log = osp.join(work_dir, 'events.json')
    assert children.run(work_dir, faults=Faults(log=log)) == 0
    with open(log) as f:
        events = [tuple(e) for e in json.load(f)]
    return weights(osp.join(work_dir, f'iter_{MAX_ITERS}.pth')), events, work_dir


def test_the_writes_go_to_a_part_file_then_are_renamed(reference):
    """Each file is fsync'ed before its rename, the directory after it; the old checkpoint is
    removed last."""
    _, events, work_dir = reference
    directory = osp.basename(work_dir) + '/'

    def save(step):
        return [('write', f'iter_{step}.pth.part'), ('fsync', f'iter_{step}.pth.part'),
                ('replace', f'iter_{step}.pth'), ('fsync', directory),
                ('write', 'last_checkpoint.part'), ('fsync', 'last_checkpoint.part'),
                ('replace', 'last_checkpoint'), ('fsync', directory)]

    assert events[:8] == save(1)
    assert events[8:17] == save(2) + [('remove', 'iter_1.pth')]
    assert len(events) == 8 + 9 * (MAX_ITERS - 1)


def kill_points(events):
    """(event number, fraction of bytes written) for every operation, twice for writes."""
    points = []
    for i, (kind, _) in enumerate(events, start=1):
        points += [(i, 0.5), (i, 0.0)] if kind == 'write' else [(i, None)]
    return points


def test_kill_9_at_every_write_step_leaves_a_checkpoint_that_resumes(children, reference,
                                                                     tmp_path):
    final, events, _ = reference
    points = kill_points(events)
    lost = 0
    for n, (kill_at, keep) in enumerate(points):
        work_dir = str(tmp_path / f'kill{n}')
        status = children.run(work_dir, faults=Faults(kill_at, keep))
        assert killed(status), f'kill point {kill_at} not reached'
        done = events[:kill_at - 1]
        saved = sum(kind == 'replace' and name.startswith('iter_') for kind, name in done)
        pointed = sum(kind == 'replace' and name == 'last_checkpoint' for kind, name in done)
        found = find_resume_checkpoint(work_dir)
        if saved == 0:
            assert found is None
            continue
        # last_checkpoint decides while it names a complete file; it moves right after a save.
        expected = pointed or saved
        if found is None or stored_iter(found) != expected:
            lost += 1
            continue
        assert children.run(work_dir, resume=True) == 0
        assert open(osp.join(work_dir, 'start_iter')).read() == str(expected)
        got = weights(osp.join(work_dir, f'iter_{MAX_ITERS}.pth'))
        for key in final:
            torch.testing.assert_close(got[key], final[key], rtol=0, atol=0)
        assert sorted(f for f in os.listdir(work_dir) if 'iter_' in f) == \
            [f'iter_{MAX_ITERS}.pth']
    print(f'\nkill -9 during checkpoint writes: {len(points)} kills, {lost} checkpoints lost')
    assert len(points) == 32
    assert lost == 0


def test_mmengine_hook_killed_in_the_same_write_keeps_no_checkpoint(children, tmp_path):
    """What the atomic hook prevents: CheckpointHook removes iter_1.pth first, then dies while
    writing iter_2.pth in place."""
    # Events of CheckpointHook: 1 write of iter_1, 1 of last_checkpoint, remove iter_1, write.
    status = children.run(str(tmp_path), hook_type='CheckpointHook', faults=Faults(4, 0.5))
    assert killed(status)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth')) == ['iter_2.pth']
    with pytest.raises(ValueError, match='iter_2.pth'):
        find_resume_checkpoint(str(tmp_path))


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write('old', path)
    atomic_write('new path', path)
    assert open(path).read() == 'new path'
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_hook_is_registered_in_mmengines_root_registry():
    from mmengine.registry import HOOKS
    assert HOOKS.get('AtomicCheckpointHook') is AtomicCheckpointHook


def _local_bases(path: str):
    """The files of this repository that the config at ``path`` names in ``_base_``; None for
    a file without ``_base_``."""
    import ast
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == '_base_':
            bases = ast.literal_eval(node.value)
            return [osp.normpath(osp.join(osp.dirname(path), base))
                    for base in ([bases] if isinstance(bases, str) else bases) if '::' not in base]
    return None


def _hooks_source(path: str) -> str:
    """The file that sets ``default_hooks`` for the config at ``path``: itself, or the nearest
    file of the repository it inherits from that does (toolbox bases set mmengine's hook)."""
    if 'default_hooks' in open(path).read():
        return path
    found = [_hooks_source(base) for base in _local_bases(path) or []]
    found = [source for source in found if source is not None]
    return found[-1] if found else None   # the last base wins, as in mmengine


def test_every_config_writes_atomic_checkpoints():
    """Every config of the zoo and the demo gets its checkpoint hook from a file of the
    repository that sets AtomicCheckpointHook and imports the package (which registers it);
    those files are loaded and checked."""
    from mmengine.config import Config
    root = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
    configs = sorted(glob.glob(osp.join(root, '*.py')) + glob.glob(osp.join(root, 'demo', '*.py')))
    with open(osp.join(root, 'metafile.yml')) as f:   # every config of the zoo, and the demo's
        assert len(configs) == f.read().count('\n    Config: ') + 2
    sources = {path: _hooks_source(path) for path in configs}
    assert None not in sources.values(), [path for path, s in sources.items() if s is None]
    for path in sorted(set(sources.values())):
        cfg = Config.fromfile(path)
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook', path
        assert 'crossformer_mm' in cfg.custom_imports['imports'], path


def _record_replaces_and_removes(monkeypatch) -> list:
    """The (kind, file name) of every os.replace and os.remove from now on, in order."""
    done = []
    replace, remove = os.replace, os.remove
    monkeypatch.setattr(os, 'replace', lambda a, b: done.append(('replace', osp.basename(b)))
                        or replace(a, b))
    monkeypatch.setattr(os, 'remove', lambda p: done.append(('remove', osp.basename(p)))
                        or remove(p))
    return done


def test_the_previous_best_checkpoint_is_removed_after_the_new_one(tmp_path, monkeypatch):
    from mmengine.evaluator import BaseMetric

    class Step(BaseMetric):
        """A score that improves at every validation."""

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            self.calls = getattr(self, 'calls', 0) + 1
            return dict(score=float(self.calls))

    done = _record_replaces_and_removes(monkeypatch)
    data = [dict(inputs=torch.ones(4), targets=torch.zeros(2))] * 4
    Runner(model=Toy(), work_dir=str(tmp_path), experiment_name='best',
           train_dataloader=DataLoader(data, batch_size=2),
           val_dataloader=DataLoader(data, batch_size=2), val_evaluator=[Step()],
           train_cfg=dict(by_epoch=False, max_iters=2, val_interval=1), val_cfg=dict(),
           optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
           default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                              by_epoch=False, save_best='score', rule='greater')),
           default_scope='mmengine').train()
    best = [event for event in done if 'best' in event[1]]
    assert best == [('replace', 'best_score_iter_1.pth'), ('replace', 'best_score_iter_2.pth'),
                    ('remove', 'best_score_iter_1.pth')]
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth')) == [
        'best_score_iter_2.pth', 'iter_1.pth', 'iter_2.pth']


def test_other_storage_falls_back_to_checkpoint_hooks_writes_with_a_warning(tmp_path,
                                                                            monkeypatch, caplog):
    """backend_args naming another backend: CheckpointHook's writes (in place, the oldest file
    removed first), and a warning that says so."""
    done = _record_replaces_and_removes(monkeypatch)
    data = [dict(inputs=torch.ones(4), targets=torch.zeros(2))] * 4
    runner = Runner(
        model=Toy(), work_dir=str(tmp_path), experiment_name='other_storage',
        train_dataloader=DataLoader(data, batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                           by_epoch=False, max_keep_ckpts=1,
                                           backend_args=dict(backend='local'))),
        default_scope='mmengine')
    runner.logger.addHandler(caplog.handler)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING' and 'AtomicCheckpointHook' in r.getMessage()]
    assert warnings == [
        f'AtomicCheckpointHook: {tmp_path} is not written through the local file system '
        '(backend_args, file_client_args or a URL), so checkpoints are written as '
        'CheckpointHook writes them, not atomically']
    assert done == [('remove', 'iter_1.pth')]  # no renames of .part files
    assert sorted(f for f in os.listdir(tmp_path) if 'iter_' in f) == ['iter_2.pth']
