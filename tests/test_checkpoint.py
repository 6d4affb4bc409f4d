"""crossformer_mm.checkpoint: safe loading of mmengine checkpoints by every route, one-line errors
for files that are not checkpoints, an import that changes nothing else, and the official key
names."""
import contextlib
import importlib.util
import os
import os.path as osp
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from mmengine.runner.checkpoint import load_from_local
from torch import nn
from torch.utils.data import Dataset

from crossformer_mm import CrossFormer
from crossformer_mm.checkpoint import (MMENGINE_GLOBALS, NotACheckpointError,
                                       UnsafeCheckpointError, check_checkpoint_file,
                                       load_pretrained, read_checkpoint, unwrap_state_dict)
from crossformer_mm.models.backbones.official_keys import official_to_ours
from _reference import ours_to_official

TINY_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                 group_size=[7, 7, 7, 7], interval=[8, 4, 2, 1], with_acl=False)
NP_CORE = 'numpy._core' if hasattr(np, '_core') else 'numpy.core'
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def allowed_name(item):
    """The name under which an entry of MMENGINE_GLOBALS is allowed in a pickle."""
    return item[1] if isinstance(item, tuple) else f'{item.__module__}.{item.__qualname__}'


@contextlib.contextmanager
def without_allow_list():
    """torch's safe loading as it is without this package's allow-list."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.add_safe_globals(saved)


# --- A tiny mmengine Runner on CPU ---------------------------------------------------------------
class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        nn.init.constant_(self.linear.weight, 0.5)  # the same start for every run
        nn.init.zeros_(self.linear.bias)

    def forward(self, inputs, targets, mode='tensor'):
        out = self.linear(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=F.mse_loss(out, targets))
        return list(zip(out, targets))


class ToyDataset(Dataset):
    metainfo = dict(classes=('toy', ))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([i / 8, 1.0]), targets=torch.tensor(i / 4))


class ToyMetric(BaseMetric):
    """Returns numpy values as metrics do: a float32 score and an int32 array."""

    def process(self, data_batch, data_samples):
        self.results.extend(float((pred - target)**2) for pred, target in data_samples)

    def compute_metrics(self, results):
        errors = np.array(results, dtype=np.float32)
        return dict(mse=errors.mean(), hist=np.histogram(errors, bins=3)[0].astype(np.int32))


class Interrupt(Exception):
    pass


class InterruptAt(Hook):
    """Stops training after iteration ``iters``, once that iteration's checkpoint is saved."""
    priority = 'LOWEST'

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iters:
            raise Interrupt


class Record(Hook):
    """Records what a (resumed) run starts from."""

    def before_train(self, runner):
        hub = runner.message_hub
        self.start_iter = runner.iter
        self.losses_before = len(hub.get_scalar('train/loss').data[0])
        self.best_score = hub.get_info('best_score')
        self.hist = hub.get_info('val/hist')


def make_runner(work_dir, **kwargs):
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=2, collate_fn=dict(type='default_collate'))
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=uuid.uuid4().hex,
        train_dataloader=loader, val_dataloader=loader, val_evaluator=[ToyMetric()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=False, milestones=[3]),
        train_cfg=dict(by_epoch=False, max_iters=8, val_interval=2), val_cfg=dict(),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2,
                                           save_best='mse', rule='less')),
        randomness=dict(seed=0), **kwargs)


@pytest.fixture(scope='module', autouse=True)
def keep_default_scope():
    """Runners make 'mmengine' the current default scope; later tests must not inherit it."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(scope='module')
def interrupted(tmp_path_factory):
    """The work dir of a run stopped after iteration 4 of 8, and its last checkpoint."""
    work_dir = tmp_path_factory.mktemp('interrupted')
    with pytest.raises(Interrupt):
        make_runner(work_dir, custom_hooks=[InterruptAt(4)]).train()
    return work_dir, str(work_dir / 'iter_4.pth')


def test_globals_are_exactly_what_mmengine_writes(interrupted):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(interrupted[1]) == []
    with without_allow_list():
        found = torch.serialization.get_unsafe_globals_in_checkpoint(interrupted[1])
    assert set(found) == {
        'mmengine.logging.history_buffer.HistoryBuffer',
        'builtins.getattr',  # HistoryBuffer's statistics_methods: getattr(HistoryBuffer, 'min')
        'numpy.ndarray', 'numpy.dtype',
        f'{NP_CORE}.multiarray._reconstruct', f'{NP_CORE}.multiarray.scalar',
    }
    # The allow-list adds only the dtype classes (which builds need, not named in the pickle)
    # and the other numpy's names of the same two functions.
    other_core = 'numpy.core' if NP_CORE == 'numpy._core' else 'numpy._core'
    extra = {allowed_name(g) for g in MMENGINE_GLOBALS} - set(found)
    assert all(name.startswith((f'{other_core}.multiarray.', 'numpy.dtypes.', 'numpy.dtype['))
               for name in extra), extra


def test_without_allow_list_mmengine_checkpoints_are_refused(interrupted):
    with without_allow_list():
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer|numpy'):
            load_from_local(interrupted[1], 'cpu')  # mmengine's own loader: plain torch.load
        with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer|numpy'):
            read_checkpoint(interrupted[1])


def test_mmengine_checkpoint_loads_safely(interrupted):
    for checkpoint in (load_from_local(interrupted[1], 'cpu'),
                       CheckpointLoader.load_checkpoint(interrupted[1])):
        hub = checkpoint['message_hub']
        loss = hub['log_scalars']['train/loss']
        assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 4
        assert loss.mean() == pytest.approx(loss.data[0].mean())
        assert type(hub['runtime_info']['eta']) is np.float64
        assert type(hub['runtime_info']['best_score']) is np.float32
        assert hub['runtime_info']['val/hist'].dtype == np.int32
        assert checkpoint['meta']['iter'] == 4


def test_runner_resumes_where_it_stopped(interrupted, tmp_path):
    work_dir, _ = interrupted
    record = Record()
    resumed = make_runner(work_dir, resume=True, custom_hooks=[record])
    resumed.train()
    assert record.start_iter == 4 and resumed.iter == 8
    assert record.losses_before == 4  # message_hub came back, with its history
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 8
    assert type(record.best_score) is np.float32 and record.hist.dtype == np.int32

    # The same weights as a run that was never stopped (optimizer momentum, lr schedule and
    # data order all resumed).
    uninterrupted = make_runner(tmp_path)
    uninterrupted.train()
    torch.testing.assert_close(resumed.model.state_dict(), uninterrupted.model.state_dict())


# --- Refusing code, by every route that loads a checkpoint -------------------------------------
def write_marker(path):
    with open(path, 'w') as f:
        f.write('code in a checkpoint ran')


class Payload:
    """Unpickling calls ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def tool(name: str):
    """Import tools/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrained(path):
    CrossFormer(arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def runner_load(path, resume=False):
    """What ``load_from`` (tools/test.py, tools/train.py) and ``--resume`` do."""
    make_runner(osp.join(osp.dirname(path), 'run'), load_from=path, resume=resume).load_or_resume()


def convert_tool(path):
    from convert_checkpoint import convert_checkpoint
    convert_checkpoint(path, path + '.converted')


#: Every way a checkpoint gets read: this package's (the first four, :class:`UnsafeCheckpointError`)
#: and mmengine's own (torch's UnpicklingError). tools/test.py and tools/train.py load through the
#: Runner, tools/fold_dpb.py through mmengine's load_checkpoint.
LOADERS = {
    'read_checkpoint': read_checkpoint,
    'Pretrained': pretrained,
    'convert_checkpoint': convert_tool,
    'load_pretrained': lambda path: load_pretrained(
        CrossFormer(arch=TINY_ARCH), path),
    'CheckpointLoader': CheckpointLoader.load_checkpoint,
    'mmengine.load_checkpoint': lambda path: load_checkpoint(nn.Linear(1, 1), path),
    'Runner.load_from': runner_load,
    'Runner.resume': lambda path: runner_load(path, resume=True),
}
OURS = list(LOADERS)[:4]


@pytest.mark.parametrize('loader', LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize('func', [write_marker, os.system], ids=['function', 'os.system'])
def test_checkpoint_with_code_is_refused_and_code_does_not_run(func, loader, tmp_path):
    marker = tmp_path / 'marker'
    arg = str(marker) if func is write_marker else f'touch {marker}'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(weight=torch.ones(1)), meta=Payload(func, arg)), path)

    name = f'{func.__module__}.{func.__name__}'  # e.g. posix.system
    with pytest.raises(pickle.UnpicklingError, match=name.replace('.', r'\.')) as err:
        loader(path)
    assert not marker.exists()
    if loader in [LOADERS[name] for name in OURS]:
        assert err.type is UnsafeCheckpointError and '\n' not in str(err.value)

    torch.load(path, weights_only=False)  # the payload is real: unsafe loading runs it
    assert marker.exists()


def test_fold_dpb_tool_refuses_code(tmp_path):
    marker = tmp_path / 'marker'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=Payload(os.system, f'touch {marker}')), path)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'fold_dpb.py'),
                           osp.join(ROOT, 'configs', 'crossformer_t_in1k.py'), '--shape', '64',
                           '64', '--runs', '1', '--checkpoint', path],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]  # after the third-party warnings
    assert last.startswith(f'error: Refusing to load {path}: it holds posix.system')
    assert 'Traceback' not in proc.stderr and not marker.exists()


def test_getattr_only_fetches_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save(Payload(getattr, HistoryBuffer, 'mean'), path)
    assert read_checkpoint(path) is HistoryBuffer.mean
    torch.save(Payload(getattr, HistoryBuffer, 'register_statistics'), path)
    with pytest.raises(UnsafeCheckpointError, match=r'builtins\.getattr'):
        read_checkpoint(path)
    torch.save(Payload(getattr, torch.ones(1), 'mean'), path)
    with pytest.raises(UnsafeCheckpointError, match=r'builtins\.getattr'):
        read_checkpoint(path)


class RemappedStatistics:
    """Unpickles to a HistoryBuffer whose state maps ``mean`` to HistoryBuffer.max."""

    def __reduce__(self):
        state = dict(max_length=4, _log_history=np.ones(1), _count_history=np.ones(1),
                     statistics_methods={'mean': HistoryBuffer.max})
        return HistoryBuffer, (), state


@pytest.mark.parametrize('loader', LOADERS.values(), ids=LOADERS.keys())
def test_remapped_history_buffer_statistics_are_refused(loader, tmp_path):
    HistoryBuffer()  # the table holds the built-in statistics
    table = dict(HistoryBuffer._statistics_methods)
    path = str(tmp_path / 'remapped.pth')
    torch.save({'state_dict': {}, 'message_hub': RemappedStatistics()}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"statistics \['mean'\]"):
        loader(path)
    assert HistoryBuffer._statistics_methods == table
    assert HistoryBuffer([1, 3], [1, 1]).statistics('mean') == 2  # not the maximum, 3


def test_history_buffers_load_as_history_buffers(interrupted):
    hub = CheckpointLoader.load_checkpoint(interrupted[1])['message_hub']
    assert {type(buffer) for buffer in hub['log_scalars'].values()} == {HistoryBuffer}


def test_numpy_object_arrays_are_refused(tmp_path):
    path = str(tmp_path / 'object.pth')
    torch.save(dict(meta=np.array([None, 'x'], dtype=object)), path)
    with pytest.raises(UnsafeCheckpointError, match='ObjectDType|object_'):
        read_checkpoint(path)


@pytest.mark.skipif(NP_CORE != 'numpy._core', reason='needs numpy 2')
def test_checkpoint_from_numpy_1_loads(tmp_path):
    path = tmp_path / 'numpy1.pth'
    torch.save(dict(eta=np.float64(1.5), hist=np.arange(3)), path,
               _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes().replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    checkpoint = read_checkpoint(str(path))
    assert checkpoint['eta'] == 1.5 and checkpoint['hist'].tolist() == [0, 1, 2]


def test_official_yacs_config_loads_as_a_dict(official_imagenet_checkpoint, tmp_path):
    path = tmp_path / 'crossformer-t.pth'
    torch.save(official_imagenet_checkpoint({'w': torch.ones(2)}), path)
    del sys.modules['yacs.config']  # as on a machine without yacs
    checkpoint = read_checkpoint(str(path))
    assert checkpoint['config'] == {'MODEL': {'TYPE': 'cross-scale', 'NAME': 'crossformer_tiny'},
                                    'TRAIN': {'BASE_LR': 1e-3, 'EPOCHS': 300},
                                    'AMP_OPT_LEVEL': 'O1'}
    assert type(checkpoint['config']['MODEL']) is OrderedDict
    assert checkpoint['epoch'] == 299 and torch.equal(checkpoint['model']['w'], torch.ones(2))
    # Allowed while this package reads an official file, not in the whole process.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == [
        'yacs.config.CfgNode']


# --- Importing the package changes nothing in mmengine and torch but the allow-list ------------
IMPORT_SCRIPT = textwrap.dedent(r"""
    import json, os, sys, torch
    from mmengine.runner import CheckpointLoader

    torch.save({'state_dict': {'w': torch.arange(3.)}}, os.path.expanduser('~/model.pth'))

    def state():
        loads = {}
        for path in ('~/model.pth', os.path.expanduser('~/model.pth'),
                     'http://127.0.0.1:9/x.pth', '~/missing.pth'):
            try:
                loads[path] = CheckpointLoader.load_checkpoint(path)['state_dict']['w'].tolist()
            except Exception as err:
                loads[path] = type(err).__name__
        schemes = {prefix: f'{f.__module__}.{f.__qualname__}'
                   for prefix, f in CheckpointLoader._schemes.items()}
        allowed = sorted(g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
                         for g in torch.serialization.get_safe_globals())
        return dict(loads=loads, schemes=schemes, allowed=allowed)

    before = state()
    import crossformer_mm
    print(json.dumps(dict(before=before, after=state())))
""")


@pytest.fixture
def refused_url():
    """An http URL on 127.0.0.1 whose port is bound but not listening while the test runs, so
    that a connection is refused (a port assumed closed may be open)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        yield f'http://127.0.0.1:{s.getsockname()[1]}/x.pth'


def test_import_changes_no_checkpoint_loading(tmp_path, refused_url):
    env = dict(os.environ, HOME=str(tmp_path), TORCH_HOME=str(tmp_path / 'torch'))
    script = IMPORT_SCRIPT.replace('http://127.0.0.1:9/x.pth', refused_url)
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    before, after = result['before'], result['after']
    assert before['loads'] == after['loads'] == {
        '~/model.pth': [0, 1, 2], str(tmp_path / 'model.pth'): [0, 1, 2],
        refused_url: 'URLError', '~/missing.pth': 'FileNotFoundError'}
    assert before['schemes'] == after['schemes']
    # torch allows some builtins itself; the package adds exactly mmengine's classes.
    assert set(after['allowed']) - set(before['allowed']) == {
        allowed_name(g) for g in MMENGINE_GLOBALS}
    assert set(before['allowed']) <= set(after['allowed'])


# --- Pretrained: every scheme as mmengine reads it ----------------------------------------------
def test_pretrained_home_path(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    source = CrossFormer(arch=TINY_ARCH).state_dict()
    torch.save({'state_dict': source}, tmp_path / 'backbone.pth')
    model = CrossFormer(arch=TINY_ARCH, init_cfg=dict(type='Pretrained',
                                                      checkpoint='~/backbone.pth'))
    model.init_weights()
    torch.testing.assert_close(model.state_dict(), source, rtol=0, atol=0)


def test_pretrained_other_schemes_go_to_mmengines_loader(monkeypatch):
    """s3://, pavi:// ...: the path as it is, to the loader mmengine has for its scheme."""
    source = CrossFormer(arch=TINY_ARCH).state_dict()
    asked = []
    monkeypatch.setattr(CheckpointLoader, '_schemes', OrderedDict(CheckpointLoader._schemes))
    CheckpointLoader.register_scheme('bucket://', lambda path, map_location: asked.append(
        (path, map_location)) or {'state_dict': source})
    model = CrossFormer(arch=TINY_ARCH, init_cfg=dict(type='Pretrained',
                                                      checkpoint='bucket://models/x.pth'))
    model.init_weights()
    assert asked == [('bucket://models/x.pth', 'cpu')]
    torch.testing.assert_close(model.state_dict(), source, rtol=0, atol=0)


def test_pretrained_unreachable_url_is_a_network_error(tmp_path, monkeypatch, refused_url):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(ConnectionError, match=rf'Could not fetch {re.escape(refused_url)} '
                       r'\(network error: .*refused'):
        pretrained(refused_url)


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/served over http on 127.0.0.1; yields the base URL."""
    import functools
    import http.server
    import threading
    root = tmp_path / 'served'
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', root
    server.shutdown()
    thread.join()


def test_pretrained_url_is_downloaded_and_loaded_safely(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    url, root = http_server
    source = CrossFormer(arch=TINY_ARCH).state_dict()
    torch.save({'state_dict': source}, root / 'backbone.pth')
    model = CrossFormer(arch=TINY_ARCH, init_cfg=dict(type='Pretrained',
                                                      checkpoint=f'{url}/backbone.pth'))
    model.init_weights()
    torch.testing.assert_close(model.state_dict(), source, rtol=0, atol=0)
    assert (tmp_path / 'torch' / 'hub' / 'checkpoints' / 'backbone.pth').is_file()  # cached

    marker = tmp_path / 'marker'
    torch.save({'state_dict': {}, 'meta': Payload(os.system, f'touch {marker}')},
               root / 'evil.pth')
    with pytest.raises(UnsafeCheckpointError, match=r'posix\.system'):
        pretrained(f'{url}/evil.pth')
    assert not marker.exists()


def test_pretrained_url_that_serves_a_page(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    url, root = http_server
    (root / 'model.pth').write_text('<!DOCTYPE html>\n<html><title>Sign in</title></html>\n')
    with pytest.raises(NotACheckpointError) as err:
        pretrained(f'{url}/model.pth')
    assert str(err.value).startswith(f'{url}/model.pth: ') and 'an HTML page' in str(err.value)
    assert 'the download was deleted' in str(err.value)
    assert not (tmp_path / 'torch' / 'hub' / 'checkpoints' / 'model.pth').exists()


# --- Files that are not checkpoints ---------------------------------------------------------------
def truncated_zip(path):
    torch.save({'w': torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def zip_without_checkpoint(path):
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('weights.npy', b'\x93NUMPY')


BAD_FILES = {  # name: (writer, what the error says the file is)
    'empty': (lambda p: p.write_bytes(b''), 'an empty file'),
    'text': (lambda p: p.write_text('epoch 12: loss 0.53\nepoch 13: loss 0.51\n'),
             "a text file, starting 'epoch 12: loss 0.53'"),
    'html': (lambda p: p.write_text('\n<!doctype html>\n<html lang="en"><head><title>Google Drive'
                                    '</title></head><body>Sign in</body></html>'),
             'an HTML page (a failed download? check the link and download it again)'),
    'git-lfs': (lambda p: p.write_text('version https://git-lfs.github.com/spec/v1\n'
                                       'oid sha256:4d7a2146\nsize 120834571\n'),
                'a git-LFS pointer, not the file it stands for (fetch that with `git lfs pull`)'),
    'random': (lambda p: p.write_bytes(bytes.fromhex('a17f3c09e2550b44') +
                                       np.random.default_rng(0).bytes(4088)),
               'neither a zip archive nor a pickle (it starts with bytes a1 7f 3c 09 e2 55 0b 44)'),
    'truncated-zip': (truncated_zip, 'a truncated zip archive ('),
    'zip-of-something-else': (zip_without_checkpoint,
                              "a zip archive with no PyTorch checkpoint in it (it holds "
                              "['weights.npy'])"),
}


def run_tool(name, argv, capsys):
    """tools/<name>.py in this process; its one-line error (exit status 2)."""
    import cli
    with pytest.raises(SystemExit) as exc:
        cli.run_cli(tool(name).main, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    raise NotACheckpointError(err[len('error: '):])


RETINANET = osp.join(ROOT, 'configs', 'retinanet_crossformerpp_s_1x.py')
#: Where this package reads a checkpoint, and the checks the tools make before mmengine reads one.
CHECKED_ROUTES = {
    'check_checkpoint_file': lambda path, capsys: check_checkpoint_file(path),
    'read_checkpoint': lambda path, capsys: read_checkpoint(path),
    'Pretrained': lambda path, capsys: pretrained(path),
    'convert_checkpoint': lambda path, capsys: convert_tool(path),
    'tools/test.py': lambda path, capsys: run_tool('test', [RETINANET, path], capsys),
    'tools/train.py --resume': lambda path, capsys: run_tool(
        'train', [RETINANET, '--resume', path, '--work-dir', osp.dirname(path)], capsys),
}


@pytest.mark.parametrize('route', CHECKED_ROUTES)
@pytest.mark.parametrize('kind', BAD_FILES)
def test_file_that_is_not_a_checkpoint(kind, route, tmp_path, capsys):
    write, what = BAD_FILES[kind]
    path = tmp_path / 'crossformer-s.pth'
    write(path)
    with pytest.raises(NotACheckpointError) as err:
        CHECKED_ROUTES[route](str(path), capsys)
    assert str(err.value).startswith(f'{path} is not a PyTorch checkpoint: it is {what}')
    assert '\n' not in str(err.value)


def test_fold_dpb_tool_names_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'crossformer-t.pth'
    BAD_FILES['git-lfs'][0](path)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'fold_dpb.py'),
                           osp.join(ROOT, 'configs', 'crossformer_t_in1k.py'),
                           '--checkpoint', str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f'error: {path} is not a PyTorch checkpoint: it is ' + BAD_FILES['git-lfs'][1]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='Checkpoint not found: .*missing.pth'):
        read_checkpoint(str(tmp_path / 'missing.pth'))


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
def test_real_checkpoints_pass_the_check(legacy, tmp_path):
    path = tmp_path / 'model.pth'
    torch.save({'w': torch.ones(2)}, path, _use_new_zipfile_serialization=not legacy)
    check_checkpoint_file(str(path))
    assert torch.equal(read_checkpoint(str(path))['w'], torch.ones(2))


def test_damaged_checkpoint_is_one_line(tmp_path):
    """A zip that passes the check but whose pickle is cut: torch's error, in one line."""
    path = tmp_path / 'model.pth'
    torch.save({'w': torch.ones(2)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    pkl = next(name for name in members if name.endswith('data.pkl'))
    members[pkl] = members[pkl][:10]
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises((NotACheckpointError, UnsafeCheckpointError)) as err:
        read_checkpoint(str(path))
    assert str(err.value).startswith(f'Cannot read checkpoint {path}: ')
    assert '\n' not in str(err.value)


# --- Official key names -------------------------------------------------------------------------
@pytest.mark.parametrize('official, ours', [
    ('patch_embed.projs.2.weight', 'stages.0.cel.projs.2.weight'),
    ('patch_embed.norm.bias', 'stages.0.cel.norm.bias'),
    ('layers.0.downsample.reductions.1.weight', 'stages.1.cel.projs.1.weight'),
    ('layers.2.downsample.norm.weight', 'stages.3.cel.norm.weight'),
    ('layers.1.blocks.3.attn.pos.pos_proj.bias', 'stages.1.blocks.3.attn.dpb.proj.bias'),
    ('layers.1.blocks.3.attn.pos.pos3.2.weight', 'stages.1.blocks.3.attn.dpb.layers.2.2.weight'),
    ('layers.3.blocks.0.mlp.fc1.weight', 'stages.3.blocks.0.ffn.layers.0.0.weight'),
    ('layers.3.blocks.0.mlp.fc2.bias', 'stages.3.blocks.0.ffn.layers.1.bias'),
    ('layers.0.blocks.1.ex_conv.weight', 'stages.0.blocks.1.acl.conv.weight'),
    ('layers.0.blocks.1.ex_ln.weight', 'stages.0.blocks.1.acl.norm.weight'),
    ('layers.2.blocks.5.attn.qkv.weight', 'stages.2.blocks.5.attn.qkv.weight'),
])
def test_official_key_names(official, ours):
    weight = torch.ones(1)
    assert official_to_ours({official: weight}) == {ours: weight}
    assert ours_to_official(ours) == official


def test_every_backbone_key_has_an_official_name():
    state = CrossFormer(arch=TINY_ARCH).state_dict()
    official = {ours_to_official(key): value for key, value in state.items()}
    assert None not in official
    assert list(official_to_ours(official)) == list(state)
    # Names that are not official backbone names, ours among them, stay as they are.
    others = dict.fromkeys(['head.weight', 'norm.weight', 'neck.fpn_convs.0.conv.weight', *state])
    assert official_to_ours(others) == others


def test_load_state_dict_converts_official_names_of_an_earlier_version_only():
    source = CrossFormer(arch=TINY_ARCH).state_dict()
    assert source._metadata['']['version'] == 2  # what state_dict() records
    official = OrderedDict((ours_to_official(k), v) for k, v in source.items())
    for metadata in (None, {'': {'version': 1}}):  # a dict built by hand; the official code's
        if metadata is not None:
            official._metadata = OrderedDict(metadata)
        target = CrossFormer(arch=TINY_ARCH)
        target.load_state_dict(official, strict=True)
        torch.testing.assert_close(target.state_dict(), source, rtol=0, atol=0)
    official._metadata = OrderedDict({'': {'version': 2}})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"patch_embed\.projs\.0\.weight"'):
        CrossFormer(arch=TINY_ARCH).load_state_dict(official, strict=True)


def test_unwrap_state_dict():
    weight = torch.ones(1)
    assert unwrap_state_dict({'model': {'module.a': weight, 'step': 3}}) == {'a': weight}
    assert unwrap_state_dict({'state_dict': {'a': weight}, 'meta': {}}) == {'a': weight}
    with pytest.raises(ValueError):
        unwrap_state_dict([weight])


@pytest.mark.parametrize('layout', ['official', 'mmdet2', 'ours'])
def test_load_backbone_checkpoint(layout, tmp_path):
    source = CrossFormer(arch=TINY_ARCH).state_dict()
    if layout == 'official':  # ImageNet classifier: official names, a head
        checkpoint = {'model': {ours_to_official(k): v for k, v in source.items()},
                      'head.weight': torch.zeros(2, 128)}
    elif layout == 'mmdet2':  # a whole detector, backbone under ``backbone.``
        checkpoint = {'state_dict': {f'backbone.{ours_to_official(k)}': v
                                     for k, v in source.items()}, 'meta': {'epoch': 12}}
    else:
        checkpoint = {'state_dict': source}
    path = str(tmp_path / 'backbone.pth')
    torch.save(checkpoint, path)

    target = CrossFormer(arch=TINY_ARCH)
    load_pretrained(target, path)
    torch.testing.assert_close(target.state_dict(), source)


def test_load_backbone_checkpoint_refuses_other_models(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'model': {'fc.weight': torch.ones(2, 2)}}, path)
    with pytest.raises(ValueError, match='no CrossFormer backbone weights'):
        load_pretrained(CrossFormer(arch=TINY_ARCH), path)
    wider = CrossFormer(arch={**TINY_ARCH, 'embed_dims': 32}).state_dict()
    torch.save({'state_dict': wider}, path)
    with pytest.raises(ValueError, match='does not fit'):
        load_pretrained(CrossFormer(arch=TINY_ARCH), path)
