"""Checkpoints that are complete or absent, whenever the process dies.

mmengine's :class:`~mmengine.hooks.CheckpointHook` removes the oldest checkpoint first, then
writes the new one in place and then the ``last_checkpoint`` pointer, so a run killed while it
writes (a full disk, a pre-empted job) with ``max_keep_ckpts=1`` keeps only a truncated file.
:class:`AtomicCheckpointHook` keeps mmengine's hook and changes only the order and the writes:
each file is written to ``<name>.part`` in the same directory, flushed, fsync'ed and renamed
over its final name; the pointer is replaced the same way after that; old checkpoints are removed
last. The writes go through the file backend ``'atomic_local'``, which the runner's own
``save_checkpoint`` then uses too, so nothing of mmengine is patched.
"""
import glob
import os
import os.path as osp
import re
from typing import List, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

#: What a file being written is called until it is complete.
PART_SUFFIX = '.part'
ATOMIC_BACKEND = 'atomic_local'


def atomic_write(data: Union[bytes, str], path: str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    A rename within one directory is atomic on POSIX file systems; the fsync of the data before
    it and of the directory after it make the result survive a power loss too.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    part = path + PART_SUFFIX
    with open(part, 'wb') as f:
        f.write(data.encode('utf-8') if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX only; Windows cannot open directories)."""
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """The local file backend, writing every file with :func:`atomic_write`."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook whose checkpoints are complete or absent (see the module).

    Takes CheckpointHook's arguments; a config switches with
    ``default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))``. Checkpoints kept in
    other storage than the local file system (``backend_args``, ``out_dir='s3://...'``) are
    written as CheckpointHook writes them, with a warning.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self.atomic = (self.file_client_args is None
                       and self.backend_args in (None, dict(backend=ATOMIC_BACKEND))
                       and isinstance(self.file_backend, LocalBackend))
        if not self.atomic:
            runner.logger.warning(
                f'AtomicCheckpointHook: {self.out_dir} is not written through the local file '
                'system (backend_args, file_client_args or a URL), so checkpoints are written '
                'as CheckpointHook writes them, not atomically')
            return
        self.backend_args = dict(backend=ATOMIC_BACKEND)
        self.file_backend = AtomicLocalBackend()
        if is_main_process():
            self._remove_leftovers(runner)

    def _remove_leftovers(self, runner) -> None:
        """What a killed run left: half-written files, and checkpoints older than the kept
        ones (after resuming) that it had not removed yet."""
        for part in sorted(glob.glob(osp.join(glob.escape(self.out_dir), '*' + PART_SUFFIX))):
            os.remove(part)
            runner.logger.warning(f'Removed {part}, a file that an earlier run did not finish '
                                  'writing')
        if self.max_keep_ckpts <= 0 or not self.keep_ckpt_ids or not osp.isdir(self.out_dir):
            return
        step = re.compile(re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)'))
        for name in sorted(os.listdir(self.out_dir)):
            found = step.fullmatch(name)
            if found and int(found.group(1)) < self.keep_ckpt_ids[0]:
                os.remove(osp.join(self.out_dir, name))
                runner.logger.warning(f'Removed {name}: older than the checkpoints kept '
                                      f'(max_keep_ckpts={self.max_keep_ckpts})')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """CheckpointHook's, with the old checkpoint removed after the new one and its pointer."""
        if not self.atomic:
            return super()._save_checkpoint_with_step(runner, step, meta)
        stale = self._next_keep_ckpt_ids(runner, step)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        for old in stale:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)

    def _next_keep_ckpt_ids(self, runner, step) -> List[int]:
        """Add ``step`` to the checkpoints kept; return the steps that fall out, to remove later.

        The ids are updated before the save, as CheckpointHook does, because the checkpoint
        stores them (message hub) for the run that resumes from it.
        """
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        stale = []
        while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
            stale.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return stale

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """CheckpointHook's, with the previous best checkpoint removed after the new one."""
        if not getattr(self, 'atomic', False):
            return super()._save_best_checkpoint(runner, metrics)
        backend, deferred = self.file_backend, _DeferredRemoval(self.file_backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        deferred.flush()


class _DeferredRemoval:
    """A file backend whose ``remove`` waits for :meth:`flush`."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.removed: List[str] = []

    def remove(self, filepath) -> None:
        self.removed.append(str(filepath))

    def flush(self) -> None:
        for path in self.removed:
            if self.backend.isfile(path):
                self.backend.remove(path)
        self.removed.clear()

    def __getattr__(self, name: str):
        return getattr(self.backend, name)
