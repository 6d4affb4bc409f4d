"""crossformer_mm.checkpoint: safe loading of mmengine checkpoints (issue 2, items 5 and 6) and
the official key names."""
import contextlib
import os
import pickle
import sys
import uuid
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
from crossformer_mm.checkpoint import (MMENGINE_GLOBALS, UnsafeCheckpointError,
                                       load_backbone_checkpoint, load_checkpoint_file,
                                       official_to_ours, ours_to_official, unwrap_state_dict)

TINY_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                 group_size=[7, 7, 7, 7], interval=[8, 4, 2, 1], acl=False)
NP_CORE = 'numpy._core' if hasattr(np, '_core') else 'numpy.core'


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
            load_checkpoint_file(interrupted[1])


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


# --- Refusing what is not a checkpoint ---------------------------------------------------------
def write_marker(path):
    with open(path, 'w') as f:
        f.write('code in a checkpoint ran')


class Payload:
    """Unpickling calls ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


LOADERS = {
    'load_checkpoint_file': load_checkpoint_file,
    'CheckpointLoader': CheckpointLoader.load_checkpoint,
    'mmengine.load_checkpoint': lambda path: load_checkpoint(nn.Linear(1, 1), path),
}


@pytest.mark.parametrize('loader', LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize('func', [write_marker, os.system], ids=['function', 'os.system'])
def test_checkpoint_with_code_is_refused_and_code_does_not_run(func, loader, tmp_path):
    marker = tmp_path / 'marker'
    arg = str(marker) if func is write_marker else f'touch {marker}'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(weight=torch.ones(1)), meta=Payload(func, arg)), path)

    name = f'{func.__module__}.{func.__name__}'  # e.g. posix.system
    with pytest.raises(UnsafeCheckpointError, match=name.replace('.', r'\.')):
        loader(path)
    assert not marker.exists()

    torch.load(path, weights_only=False)  # the payload is real: unsafe loading runs it
    assert marker.exists()


def test_getattr_only_fetches_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save(Payload(getattr, HistoryBuffer, 'mean'), path)
    assert load_checkpoint_file(path) is HistoryBuffer.mean
    torch.save(Payload(getattr, HistoryBuffer, 'register_statistics'), path)
    with pytest.raises(UnsafeCheckpointError, match=r'builtins\.getattr'):
        load_checkpoint_file(path)
    torch.save(Payload(getattr, torch.ones(1), 'mean'), path)
    with pytest.raises(UnsafeCheckpointError, match=r'builtins\.getattr'):
        load_checkpoint_file(path)


class RemappedStatistics:
    """Unpickles to a HistoryBuffer whose state maps ``mean`` to HistoryBuffer.max."""

    def __reduce__(self):
        state = dict(max_length=4, _log_history=np.ones(1), _count_history=np.ones(1),
                     statistics_methods={'mean': HistoryBuffer.max})
        return HistoryBuffer, (), state


def test_remapped_history_buffer_statistics_are_refused_and_undone(tmp_path):
    HistoryBuffer()  # the table holds the built-in statistics
    table = dict(HistoryBuffer._statistics_methods)
    path = str(tmp_path / 'remapped.pth')
    torch.save({'message_hub': RemappedStatistics()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"statistics \['mean'\]"):
        load_checkpoint_file(path)
    assert HistoryBuffer._statistics_methods == table
    assert HistoryBuffer([1, 3], [1, 1]).statistics('mean') == 2  # not the maximum, 3


def test_numpy_object_arrays_are_refused(tmp_path):
    path = str(tmp_path / 'object.pth')
    torch.save(dict(meta=np.array([None, 'x'], dtype=object)), path)
    with pytest.raises(UnsafeCheckpointError, match='ObjectDType|object_'):
        load_checkpoint_file(path)


@pytest.mark.skipif(NP_CORE != 'numpy._core', reason='needs numpy 2')
def test_checkpoint_from_numpy_1_loads(tmp_path):
    path = tmp_path / 'numpy1.pth'
    torch.save(dict(eta=np.float64(1.5), hist=np.arange(3)), path,
               _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes().replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    checkpoint = load_checkpoint_file(str(path))
    assert checkpoint['eta'] == 1.5 and checkpoint['hist'].tolist() == [0, 1, 2]


def test_official_yacs_config_loads_as_a_dict(official_imagenet_checkpoint, tmp_path):
    path = tmp_path / 'crossformer-t.pth'
    torch.save(official_imagenet_checkpoint({'w': torch.ones(2)}), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    del sys.modules['yacs.config']  # as on a machine without yacs
    checkpoint = load_checkpoint_file(str(path))
    assert checkpoint['config'] == {'MODEL': {'TYPE': 'cross-scale', 'NAME': 'crossformer_tiny'},
                                    'TRAIN': {'BASE_LR': 1e-3, 'EPOCHS': 300},
                                    'AMP_OPT_LEVEL': 'O1'}
    assert type(checkpoint['config']['MODEL']) is OrderedDict
    assert checkpoint['epoch'] == 299 and torch.equal(checkpoint['model']['w'], torch.ones(2))


def test_local_paths_go_through_the_safe_loader():
    from crossformer_mm.checkpoint import _load_from_local
    assert CheckpointLoader._get_checkpoint_loader('work_dirs/iter_4.pth') is _load_from_local
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is not _load_from_local


def test_load_checkpoint_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))
    (tmp_path / 'broken.pth').write_bytes(b'not a checkpoint')
    with pytest.raises((ValueError, UnsafeCheckpointError), match='broken.pth'):
        load_checkpoint_file(str(tmp_path / 'broken.pth'))


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
    assert official_to_ours(official) == ours
    assert ours_to_official(ours) == official


def test_every_backbone_key_has_an_official_name():
    for key in CrossFormer(arch=TINY_ARCH).state_dict():
        official = ours_to_official(key)
        assert official is not None and official_to_ours(official) == key, key
    assert official_to_ours('head.weight') is None and official_to_ours('norm.weight') is None


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
    load_backbone_checkpoint(target, path)
    torch.testing.assert_close(target.state_dict(), source)


def test_load_backbone_checkpoint_refuses_other_models(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'model': {'fc.weight': torch.ones(2, 2)}}, path)
    with pytest.raises(ValueError, match='no CrossFormer backbone weights'):
        load_backbone_checkpoint(CrossFormer(arch=TINY_ARCH), path)
    wider = CrossFormer(arch={**TINY_ARCH, 'embed_dims': 32}).state_dict()
    torch.save({'state_dict': wider}, path)
    with pytest.raises(ValueError, match='does not fit'):
        load_backbone_checkpoint(CrossFormer(arch=TINY_ARCH), path)
