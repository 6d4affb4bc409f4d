"""Reading checkpoints safely, saying what a file that is not one is, and loading pretrained
backbone weights.

torch >= 2.6 unpickles checkpoints with ``weights_only=True``, which refuses every global that
is not allow-listed, and so refuses mmengine's own checkpoints (their ``message_hub`` holds
:class:`~mmengine.logging.HistoryBuffer` objects and numpy arrays and scalars). Importing this
module allow-lists exactly those classes and changes nothing else: mmengine's
:class:`~mmengine.runner.CheckpointLoader` keeps its own loaders for every scheme.

* :func:`read_checkpoint`: a checkpoint file (any scheme) -> its dict, through that
  ``CheckpointLoader``, with a one-line error for a file that is not a checkpoint
  (:func:`check_checkpoint_file`) and for one that safe loading refuses.
* :func:`load_pretrained`: a checkpoint file -> the weights of a CrossFormer backbone, from an
  official checkpoint or one of this package (``init_cfg=dict(type='Pretrained')``).
"""
import contextlib
import logging
import os
import os.path as osp
import pickle
import re
import sys
import tarfile
import zipfile
from collections import OrderedDict
from typing import Dict, Iterator, Optional
from urllib.error import URLError
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader
from mmengine.utils import ProgressBar

from .models.backbones.official_keys import official_to_ours

# The four statistics every HistoryBuffer has (mmengine/logging/history_buffer.py).
_HISTORY_BUFFER_STATISTICS = ('current', 'max', 'mean', 'min')
_BUILTIN_STATISTICS = {name: getattr(HistoryBuffer, name) for name in _HISTORY_BUFFER_STATISTICS}


class _CheckedHistoryBuffer(HistoryBuffer):
    """What safe loading builds for a pickled HistoryBuffer: a HistoryBuffer, once it is built.

    ``HistoryBuffer.__setstate__`` merges the checkpoint's statistics methods into a table that
    every HistoryBuffer of the process shares, so a crafted file could make ``mean`` compute
    the maximum from then on. This refuses such a state before anything is merged, by every
    route that loads safely (mmengine's own ``load_from`` and ``resume`` included), and then
    becomes a plain HistoryBuffer.
    """

    def __setstate__(self, state: dict) -> None:
        table = HistoryBuffer._statistics_methods
        remapped = sorted(name for name, method in state.get('statistics_methods', {}).items()
                          if method is not _BUILTIN_STATISTICS.get(name, table.get(name)))
        if remapped:
            raise pickle.UnpicklingError(
                f'its HistoryBuffers give the statistics {remapped} other methods than their '
                'own, which would change every HistoryBuffer of this process')
        super().__setstate__(state)
        self.__class__ = HistoryBuffer


def _history_buffer_statistic(owner, name: str):
    """``getattr`` for safe unpickling, able to fetch only HistoryBuffer's built-in statistics.

    A pickled HistoryBuffer carries its ``statistics_methods`` (``HistoryBuffer.min`` ...), which
    pickle protocol 2 (torch.save's) writes as ``getattr(HistoryBuffer, 'min')``. Allow-listing
    the real ``builtins.getattr`` would let a checkpoint reach any attribute of any allowed
    object, so this stands in for it and refuses everything else.
    """
    if owner in (HistoryBuffer, _CheckedHistoryBuffer) and name in _HISTORY_BUFFER_STATISTICS:
        return _BUILTIN_STATISTICS[name]
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
    (_CheckedHistoryBuffer, f'{HistoryBuffer.__module__}.{HistoryBuffer.__qualname__}'),
    (_history_buffer_statistic, 'builtins.getattr'),
    np.ndarray,
    np.dtype,
    *[(getattr(_np_core.multiarray, name), f'numpy.{core}.multiarray.{name}')
      for core in ('core', '_core') for name in ('_reconstruct', 'scalar')],
    *sorted({type(np.dtype(code))
             for code in '?' + np.typecodes['AllInteger'] + np.typecodes['Float']}, key=str),
]
torch.serialization.add_safe_globals(MMENGINE_GLOBALS)


class YacsConfig:
    """Stands in for ``yacs.config.CfgNode`` when unpickling: a node becomes an OrderedDict.

    The official ImageNet training code (Swin's ``save_checkpoint``) stores its yacs config next
    to the weights. yacs need not be installed and none of its code runs. torch's safe
    unpickler puts items only into dicts and OrderedDicts, hence the OrderedDict; the node's
    own flags (``__immutable__`` ...) end up as its attributes, unused.
    """

    def __new__(cls, *args) -> OrderedDict:
        return OrderedDict()


#: What the official checkpoints hold besides tensors and plain containers. Allowed only while
#: :func:`read_checkpoint` reads, not in the whole process.
OFFICIAL_GLOBALS = [(YacsConfig, 'yacs.config.CfgNode')]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a global that safe loading does not allow."""


class NotACheckpointError(ValueError):
    """A file that is not a PyTorch checkpoint, or one that cannot be read."""


# ------------------------------------------------------------------------- what a file is
#: How ``torch.save(..., _use_new_zipfile_serialization=False)`` files begin, after the pickle
#: protocol: its magic number as a pickled long.
_LEGACY_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[2:-1]
_TEXT_BYTES = bytes(range(0x20, 0x7f)) + bytes(range(0x80, 0x100)) + b'\t\n\r\f\b'


def describe_non_checkpoint(path: str) -> Optional[str]:
    """What the file at ``path`` is, if it cannot be a PyTorch checkpoint; None if it may be one.

    torch reports such files with a zip reader's or an unpickler's error, and random bytes even
    as a global that safe loading refuses. These are what a checkpoint path holds instead when a
    download failed (an HTML page), a git-LFS file was never fetched, or a copy was cut short.
    """
    size = osp.getsize(path)
    if size == 0:
        return 'an empty file'
    with open(path, 'rb') as f:
        head = f.read(1024)
    if head.startswith(b'PK\x03\x04'):  # torch.save's format since torch 1.6
        if not zipfile.is_zipfile(path):
            return f'a truncated zip archive ({size} bytes: an interrupted download or copy?)'
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if not any(name.endswith('data.pkl') for name in names):
            return f'a zip archive with no PyTorch checkpoint in it (it holds {names[:3]})'
        return None
    if head.startswith(b'\x80') and _LEGACY_MAGIC in head[:16]:  # torch.save's older format
        return None
    if head.startswith(b'version https://git-lfs'):
        return ('a git-LFS pointer, not the file it stands for (fetch that with `git lfs pull`)')
    text = head.lstrip(b'\xef\xbb\xbf \t\r\n').lower()
    if text.startswith(b'<!doctype html') or b'<html' in text[:256]:
        return 'an HTML page (a failed download? check the link and download it again)'
    if len(head) > 8 and head[8:9] == b'{' and int.from_bytes(head[:8], 'little') < size:
        return 'a safetensors file (read it with safetensors.torch.load_file)'
    if not head.translate(None, _TEXT_BYTES):
        line = head.decode('utf-8', 'replace').strip().splitlines()[0][:60]
        return f'a text file, starting {line!r}'
    if size > 512 and tarfile.is_tarfile(path):  # torch.save's format before torch 0.4
        return None
    return f'neither a zip archive nor a pickle (it starts with bytes {head[:8].hex(" ")})'


def check_checkpoint_file(path: str) -> None:
    """Raise FileNotFoundError, or :class:`NotACheckpointError` saying what the file is instead."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint not found: {path}')
    what = describe_non_checkpoint(path)
    if what is not None:
        raise NotACheckpointError(f'{path} is not a PyTorch checkpoint: it is {what}')


# ------------------------------------------------------------------------------- reading
#: How torch and the stand-ins above name what safe loading refuses.
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([^']+)'>|unrecognized function (\S+)")


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Allows the official checkpoints' globals while ``path`` is read, and turns torch's errors
    into one line that names the file: :class:`UnsafeCheckpointError` naming what safe loading
    refused, :class:`NotACheckpointError` for a file that is damaged inside."""
    try:
        with torch.serialization.safe_globals(OFFICIAL_GLOBALS):
            yield
    except OSError:  # not found, no permission, network: their messages name the file
        raise
    except Exception as err:  # noqa: B902  (whatever torch's unpickler or zip reader raise)
        message = str(err).split('WeightsUnpickler error:')[-1].strip()
        first_line = message.splitlines()[0] if message else type(err).__name__
        refused = _REFUSED.search(message)
        if isinstance(err, pickle.UnpicklingError) and 'HistoryBuffers give' in message:
            raise UnsafeCheckpointError(f'Refusing to load {path}: {first_line}') from None
        if isinstance(err, pickle.UnpicklingError) and refused:
            what = next(group for group in refused.groups() if group)
            raise UnsafeCheckpointError(
                f'Refusing to load {path}: it holds {what}, which safe loading '
                '(weights_only=True) does not allow, so none of its code was run. Only tensors, '
                "plain containers, mmengine's own checkpoint classes and the official code's "
                'yacs config are accepted.') from None
        raise NotACheckpointError(f'Cannot read checkpoint {path}: {first_line}') from None


def fetch(url: str) -> str:
    """The local copy of ``url`` in torch's hub cache, downloaded first if it is not there.

    mmengine's http loader keeps its downloads in the same place, but unpickles them with
    ``weights_only=False`` (``torch.hub.load_state_dict_from_url``'s default), so the file is
    fetched here and read like a local one. In a distributed run rank 0 downloads.
    """
    path = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=os.isatty(0))
        except (URLError, OSError) as err:
            reason = getattr(err, 'reason', err)
            raise ConnectionError(f'Could not fetch {url} (network error: {reason})') from None
    if world_size > 1:
        torch.distributed.barrier()
    return path


def local_checkpoint(path: str) -> str:
    """The file to read for ``path``, checked: a local path with ``~`` expanded, the cached
    download of an ``http(s)://`` URL (:func:`fetch`), or a path of another scheme (``s3://``,
    ...) as it is, for mmengine's loader of that scheme.

    Raises FileNotFoundError, ConnectionError or :class:`NotACheckpointError` (a download that
    is not a checkpoint is deleted from the cache, or every later run would read it again).
    """
    if path.startswith(('http://', 'https://')):
        url, path = path, fetch(path)
        try:
            check_checkpoint_file(path)
        except NotACheckpointError as err:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            raise NotACheckpointError(f'{url}: {err}; the download was deleted') from None
    elif '://' not in path:
        path = osp.expanduser(path)
        check_checkpoint_file(path)
    return path


class _ProgressFile:
    """A binary file that advances a progress bar (in MiB) as torch reads it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path, 'rb')
        self.bar = ProgressBar(max(1, os.path.getsize(path) >> 20), file=sys.stdout)
        self.shown = 0

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self._advance()
        return data

    def readinto(self, buffer) -> int:
        n = self.file.readinto(buffer)
        self._advance()
        return n

    def _advance(self) -> None:
        done = min(self.file.tell() >> 20, self.bar.task_num)
        for _ in range(done - self.shown):  # torch seeks back and forth: count the furthest
            self.bar.update()
        self.shown = max(self.shown, done)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


#: With ``progress=True``, local files at least this large show a progress bar while read.
PROGRESS_MIN_BYTES = 32 * 2**20


def read_checkpoint(path: str, map_location='cpu', progress: bool = False) -> dict:
    """A checkpoint's dict, read through mmengine's ``CheckpointLoader`` with safe loading on.

    The path is checked first (:func:`local_checkpoint`) and torch's errors become one line
    (:func:`reading`). ``progress``: a progress bar for a large local file, which torch then
    reads here (``weights_only=True``) instead of through mmengine's loader, which takes paths.
    """
    path = local_checkpoint(path)
    with reading(path):
        if progress and osp.isfile(path) and osp.getsize(path) >= PROGRESS_MIN_BYTES:
            source = _ProgressFile(path)
            try:
                return torch.load(source, map_location=map_location, weights_only=True)
            finally:
                source.close()
                print()
        return CheckpointLoader.load_checkpoint(path, map_location=map_location)


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


def load_pretrained(backbone: torch.nn.Module, path: str) -> None:
    """Load the backbone weights of the checkpoint ``path`` into a CrossFormer ``backbone``.

    Takes ImageNet classifiers (``model``), mmdet 2.x / mmseg 0.x models (``state_dict`` with
    ``backbone.`` keys), official names (converted by
    :func:`~crossformer_mm.models.backbones.official_keys.official_to_ours`) or this package's,
    and logs missing and unexpected keys. A checkpoint of another model or another arch is an
    error, not a partly random backbone.
    """
    state = unwrap_state_dict(read_checkpoint(path))
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    state = official_to_ours(state)
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
