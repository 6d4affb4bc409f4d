"""Which checkpoint ``--resume`` continues from, and when it refuses to start over."""
import logging
import os

import pytest
import torch
from mmengine.logging import MMLogger

from crossformer_mm.engine import ResumeError, find_resume_checkpoint


def save(path, iteration: int, epoch: int = 0, optimizer: bool = True) -> str:
    checkpoint = {'meta': {'iter': iteration, 'epoch': epoch},
                  'state_dict': {'w': torch.full((2, ), float(iteration))}}
    if optimizer:
        checkpoint['optimizer'] = {'state': {}, 'param_groups': []}
    torch.save(checkpoint, path)
    return str(path)


def truncate(path) -> None:
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


def point(work_dir, path) -> None:
    (work_dir / 'last_checkpoint').write_text(str(path))


@pytest.fixture
def warnings(caplog):
    """The warnings logged through mmengine's current logger."""
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    yield lambda: [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    logger.removeHandler(caplog.handler)


def test_last_checkpoint_decides_when_it_names_a_complete_file(tmp_path):
    save(tmp_path / 'iter_4.pth', 4)
    pointed = save(tmp_path / 'iter_2.pth', 2)
    point(tmp_path, pointed)
    assert find_resume_checkpoint(str(tmp_path)) == pointed


def test_without_last_checkpoint_the_newest_stored_iteration_wins(tmp_path, warnings):
    # Not the name order: iter_9 sorts after iter_10, and the file names may lie.
    save(tmp_path / 'iter_9.pth', 9)
    newest = save(tmp_path / 'iter_10.pth', 10)
    save(tmp_path / 'renamed.pth', 8)
    save(tmp_path / 'best_mIoU_iter_11.pth', 11, optimizer=False)
    assert find_resume_checkpoint(str(tmp_path)) == newest
    assert warnings() == [f'Skipping {tmp_path}/best_mIoU_iter_11.pth: it holds no optimizer '
                          'state (saved for evaluation, not for resuming)']


def test_epochs_count_by_their_stored_iteration(tmp_path):
    newest = save(tmp_path / 'epoch_2.pth', 200, epoch=2)
    save(tmp_path / 'epoch_1.pth', 100, epoch=1)
    assert find_resume_checkpoint(str(tmp_path)) == newest


def test_a_truncated_last_checkpoint_falls_back_to_the_newest_complete_one(tmp_path, warnings):
    good = save(tmp_path / 'iter_2.pth', 2)
    bad = save(tmp_path / 'iter_3.pth', 3)
    truncate(bad)
    point(tmp_path, bad)
    assert find_resume_checkpoint(str(tmp_path)) == good
    first, second = warnings()
    # The reason is the loader's, which names the file.
    assert first.startswith(f'last_checkpoint names {bad}, which cannot be resumed from ({bad}')
    assert first.endswith(f'); looking for the newest complete checkpoint in {tmp_path}')
    assert second.startswith(f'Skipping {bad}: {bad}')


def test_last_checkpoint_naming_a_removed_file_falls_back(tmp_path):
    good = save(tmp_path / 'iter_2.pth', 2)
    point(tmp_path, tmp_path / 'iter_3.pth')
    assert find_resume_checkpoint(str(tmp_path)) == good


def test_checkpoints_of_which_none_resumes_are_an_error_naming_them(tmp_path):
    for i in (1, 2):
        truncate(save(tmp_path / f'iter_{i}.pth', i))
    (tmp_path / 'notes.pth').write_text('not a checkpoint')
    with pytest.raises(ResumeError) as err:
        find_resume_checkpoint(str(tmp_path))
    assert str(err.value) == (f'--resume: none of the 3 checkpoint files in {tmp_path} can be '
                              'resumed from (iter_1.pth, iter_2.pth, notes.pth)')


@pytest.mark.parametrize('pointer', [False, True])
def test_an_empty_work_dir_starts_from_scratch(tmp_path, pointer):
    if pointer:
        point(tmp_path, tmp_path / 'iter_5.pth')
    assert find_resume_checkpoint(str(tmp_path)) is None
    assert find_resume_checkpoint(str(tmp_path / 'not_created_yet')) is None
