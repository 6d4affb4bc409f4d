"""Train a model from a config of this repository, whatever its toolbox (mmdet, mmseg, mmpretrain).

    python tools/train.py configs/mask_rcnn_crossformer_s_1x.py [--work-dir DIR]
        [--amp [fp16|bf16]] [--resume [CHECKPOINT] [--overwrite-checkpoints]]
        [--cfg-options KEY=VALUE ...] [--launcher pytorch]
"""
import argparse
import logging
from typing import Optional, Sequence

import torch
from mmengine.logging import print_log

from cli import (CommandLineError, add_amp_arg, add_common_args, amp_dtype, checked_checkpoint,
                 load_config, run, run_cli, set_reduced_precision, set_work_dir, setup_launcher)
from crossformer_mm.engine import ResumeError, find_resume_checkpoint


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector, segmentor or classifier')
    add_common_args(parser)
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    add_amp_arg(parser, 'mixed precision; fp16: mmengine\'s AmpOptimWrapper (autocast and loss '
                'scaling, CUDA), bf16: the backbone, neck and heads compute in bf16, each '
                'handing on float32 (CPU or CUDA)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CHECKPOINT, or without one from the latest complete checkpoint of the '
        'work dir (the one last_checkpoint names, else the newest readable one)')
    parser.add_argument(
        '--overwrite-checkpoints', action='store_true',
        help='with --resume: train from the start when the work dir holds checkpoint files of '
        'which none can be resumed from (they are overwritten); without it that is an error')
    return parser.parse_args(argv)


def resume_checkpoint(work_dir: str, overwrite: bool) -> Optional[str]:
    """What ``--resume`` without a path continues from; None: train from the start."""
    try:
        return find_resume_checkpoint(work_dir)
    except ResumeError as err:
        if not overwrite:
            raise CommandLineError(f'{err}; pass --overwrite-checkpoints to train from the start '
                                   'anyway, overwriting them') from None
        print_log(f'{err}; training from the start (--overwrite-checkpoints)', logger='current',
                  level=logging.WARNING)
        return None


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    setup_launcher(cfg, args.launcher, args.local_rank)
    set_work_dir(cfg, args.work_dir, args.config)
    dtype = args.amp and amp_dtype(args.amp)
    if dtype == 'fp16':  # fp16 gradients need loss scaling
        if not torch.cuda.is_available():
            raise CommandLineError('--amp fp16 needs a CUDA device (loss scaling); on CPU use '
                                   '--amp bf16')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif dtype == 'bf16':
        set_reduced_precision(cfg, dtype)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise CommandLineError('--auto-scale-lr needs auto_scale_lr.base_batch_size in '
                                   'the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        resume_from = resume_checkpoint(cfg.work_dir, args.overwrite_checkpoints)
        if resume_from is not None:
            cfg.resume, cfg.load_from = True, resume_from
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('load_from'):
        cfg.load_from = checked_checkpoint(cfg.load_from)
    run(cfg, 'train')


if __name__ == '__main__':
    run_cli(main)
