"""Safe checkpoint reading and the official CrossFormer key names.

torch >= 2.6 unpickles checkpoints with ``weights_only=True``, which refuses every global that
is not allow-listed, and so refuses mmengine's own checkpoints (their ``message_hub`` holds
:class:`~mmengine.logging.HistoryBuffer` objects and numpy arrays and scalars). Importing this
module allow-lists exactly those classes, reads the yacs config that official ImageNet
checkpoints carry as an OrderedDict (:class:`YacsConfig`), and routes mmengine's local
checkpoint loading through :func:`load_checkpoint_file`, which keeps safe loading on and names
any other global it refuses.
"""
import functools
import logging
import pickle
import re
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader

# The four statistics every HistoryBuffer has (mmengine/logging/history_buffer.py).
_HISTORY_BUFFER_STATISTICS = ('current', 'max', 'mean', 'min')


def _history_buffer_statistic(owner, name: str):
    """``getattr`` for safe unpickling, able to fetch only HistoryBuffer's built-in statistics.

    A pickled HistoryBuffer carries its ``statistics_methods`` (``HistoryBuffer.min`` ...), which
    pickle protocol 2 (torch.save's) writes as ``getattr(HistoryBuffer, 'min')``. Allow-listing
    the real ``builtins.getattr`` would let a checkpoint reach any attribute of any allowed
    object, so this stands in for it and refuses everything else.
    """
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr, used to fetch {name!r}; it may only fetch '
        f'the statistics {_HISTORY_BUFFER_STATISTICS} of HistoryBuffer')


# Exactly what mmengine writes besides tensors and plain containers (listed by
# torch.serialization.get_unsafe_globals_in_checkpoint on a Runner checkpoint): HistoryBuffer
# and its statistics methods (message_hub), numpy arrays (HistoryBuffer histories) and numpy
# scalars (e.g. ``eta``), which pickle as ndarray, _reconstruct, scalar and dtype. Each dtype
# is then built by its own class (Float64DType, ...), which must be allowed too: mmengine's own
# arrays and scalars are float64 and int64, but message_hub's runtime info also keeps what
# metrics return (``val/<metric>`` arrays, ``best_score``), so every bool, integer and
# float dtype is allowed; object, string, void, datetime and complex dtypes are not. numpy 2
# renamed numpy.core to numpy._core, so both names are accepted for checkpoints written by the
# other numpy.
_np_core = np._core if hasattr(np, '_core') else np.core
MMENGINE_GLOBALS = [
    HistoryBuffer,
    (_history_buffer_statistic, 'builtins.getattr'),
    np.ndarray,
    np.dtype,
    *[(getattr(_np_core.multiarray, name), f'numpy.{core}.multiarray.{name}')
      for core in ('core', '_core') for name in ('_reconstruct', 'scalar')],
    *sorted({type(np.dtype(code))
             for code in '?' + np.typecodes['AllInteger'] + np.typecodes['Float']}, key=str),
]


class YacsConfig:
    """Stands in for ``yacs.config.CfgNode`` when unpickling: a node becomes an OrderedDict.

    The official ImageNet training code (Swin's ``save_checkpoint``) stores its yacs config next
    to the weights. yacs need not be installed and none of its code runs. torch's safe
    unpickler puts items only into dicts and OrderedDicts, hence the OrderedDict; the node's
    own flags (``__immutable__`` ...) end up as its attributes, unused.
    """

    def __new__(cls, *args) -> OrderedDict:
        return OrderedDict()


# What the official checkpoints hold besides tensors and plain containers.
OFFICIAL_GLOBALS = [(YacsConfig, 'yacs.config.CfgNode')]
torch.serialization.add_safe_globals(MMENGINE_GLOBALS + OFFICIAL_GLOBALS)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a global that safe loading does not allow."""


#: The statistics every HistoryBuffer has, each under its own name.
_BUILTIN_STATISTICS = {name: getattr(HistoryBuffer, name) for name in _HISTORY_BUFFER_STATISTICS}


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """``torch.load`` with ``weights_only=True`` and errors that name the file and the global.

    A HistoryBuffer's ``__setstate__`` merges the checkpoint's statistics methods into a table
    that every HistoryBuffer shares, so a crafted file could make ``mean`` compute the maximum
    for the rest of the process: such a file is refused and the table left as it was.
    """
    table = HistoryBuffer._statistics_methods
    saved = dict(table)
    try:
        checkpoint = _torch_load(path, map_location)
    finally:
        remapped = sorted(name for name, method in table.items()
                          if method is not saved.get(name)
                          and method is not _BUILTIN_STATISTICS.get(name))
        if remapped:
            table.clear()
            table.update(saved)
    if remapped:
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: its HistoryBuffers give the statistics {remapped} other '
            'methods than their own, which would change every HistoryBuffer of this process.')
    return checkpoint


def _torch_load(path: str, map_location) -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch names a refused global (GLOBAL posix.system) or a class it may not build.
        found = re.search(r"GLOBAL ([\w.]+)|but got <class '([^']+)'>", str(err))
        what = (found.group(1) or found.group(2)) if found else 'an object'
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: it holds {what}, which safe loading (weights_only=True) '
            'does not allow, so none of its code was run. Only tensors, plain containers, '
            "mmengine's own checkpoint classes and the official code's yacs config are "
            'accepted.') from None
    except FileNotFoundError:
        raise FileNotFoundError(f'Checkpoint not found: {path}') from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f'Cannot read checkpoint {path}: {err}') from None


def _load_from_local(filename: str, map_location=None) -> dict:
    return load_checkpoint_file(filename, map_location)


# mmengine's default loader for local paths (resume, load_from, Pretrained init) becomes ours.
CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)


# ---------------------------------------------------------------------------------------------
# Official key names <-> ours. Templates are prefixes: {s} stage, {b} block, {i} conv or layer
# index, {k} DPB layer; {s+1} / {k+1} are those plus one.
_RULES = [
    ('patch_embed.projs.{i}.', 'stages.0.cel.projs.{i}.'),
    ('patch_embed.norm.', 'stages.0.cel.norm.'),
    ('layers.{s}.downsample.norm.', 'stages.{s+1}.cel.norm.'),
    ('layers.{s}.downsample.reductions.{i}.', 'stages.{s+1}.cel.projs.{i}.'),
    ('layers.{s}.blocks.{b}.attn.pos.pos_proj.', 'stages.{s}.blocks.{b}.attn.dpb.proj.'),
    ('layers.{s}.blocks.{b}.attn.pos.pos{k+1}.{i}.',
     'stages.{s}.blocks.{b}.attn.dpb.layers.{k}.{i}.'),
    ('layers.{s}.blocks.{b}.mlp.fc1.', 'stages.{s}.blocks.{b}.ffn.layers.0.0.'),
    ('layers.{s}.blocks.{b}.mlp.fc2.', 'stages.{s}.blocks.{b}.ffn.layers.1.'),
    ('layers.{s}.blocks.{b}.ex_conv.', 'stages.{s}.blocks.{b}.acl.conv.'),
    ('layers.{s}.blocks.{b}.ex_ln.', 'stages.{s}.blocks.{b}.acl.norm.'),
    ('layers.{s}.blocks.{b}.', 'stages.{s}.blocks.{b}.'),
]
_FIELD = re.compile(r'\{(\w)(\+1)?\}')


@functools.lru_cache(maxsize=None)
def _compile(template: str) -> re.Pattern:
    parts, pos = [], 0
    for m in _FIELD.finditer(template):
        parts.append(re.escape(template[pos:m.start()]))
        parts.append(rf'(?P<{m.group(1)}{"_1" if m.group(2) else ""}>\d+)')
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile(''.join(parts))


def _render(template: str, values: Dict[str, int]) -> str:
    return _FIELD.sub(lambda m: str(values[m.group(1)] + (1 if m.group(2) else 0)), template)


def _convert(key: str, src: int) -> Optional[str]:
    for rule in _RULES:
        m = _compile(rule[src]).match(key)
        if m is None:
            continue
        values = {name.split('_')[0]: int(v) - name.endswith('_1')
                  for name, v in m.groupdict().items()}
        if any(v < 0 for v in values.values()):
            continue
        return _render(rule[1 - src], values) + key[m.end():]
    return None


def official_to_ours(key: str) -> Optional[str]:
    """The name of an official backbone key in this package, or None if it is not one."""
    return _convert(key, 0)


def ours_to_official(key: str) -> Optional[str]:
    """The official name of one of this package's backbone keys, or None if it has none."""
    return _convert(key, 1)


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The state dict inside an official or OpenMMLab checkpoint, without ``module.``."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f'A checkpoint must be a dict, got {type(checkpoint).__name__}')
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def load_backbone_checkpoint(backbone: torch.nn.Module, path: str) -> None:
    """Load an official or converted checkpoint's backbone weights into ``backbone``.

    Takes ImageNet classifiers (``model``), mmdet 2.x / mmseg 0.x models (``state_dict`` with
    ``backbone.`` keys) and this package's checkpoints, and logs missing and unexpected keys.
    """
    state = unwrap_state_dict(load_checkpoint_file(path))
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    state = {official_to_ours(k) or k: v for k, v in state.items()}
    own = backbone.state_dict()
    if not own.keys() & state.keys():
        raise ValueError(f'{path} holds no CrossFormer backbone weights (first keys: '
                         f'{sorted(state)[:5]})')
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
             for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise ValueError(f'{path} does not fit this CrossFormer (another arch?): '
                         + '; '.join(wrong[:5]) + (' ...' if len(wrong) > 5 else ''))
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    print_log(f'Loaded CrossFormer weights from {path}: {len(own) - len(missing)} of '
              f'{len(own)} tensors; missing keys: {missing or "none"}; unexpected keys: '
              f'{unexpected or "none"}', logger='current',
              level=logging.WARNING if missing else logging.INFO)
