"""Evaluate a checkpoint with a config of this repository, whatever its toolbox.

    python tools/test.py configs/mask_rcnn_crossformer_s_1x.py CHECKPOINT [--work-dir DIR]
        [--out results.pkl] [--tta] [--amp [fp16|bf16]] [--allow-partial]
        [--cfg-options KEY=VALUE ...]
        [--launcher pytorch]
"""
import argparse
from typing import Optional, Sequence

from cli import (CommandLineError, add_amp_arg, add_common_args, amp_dtype, checked_checkpoint,
                 load_config, run, run_cli, set_reduced_precision, set_work_dir, setup_launcher)
from crossformer_mm.engine import CheckpointMismatchError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a detector, segmentor or classifier')
    add_common_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='also dump the raw predictions to this pickle file')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_pipeline and tta_model "
                        '(the ADE20K configs: multi-scale and flip testing, "MS IoU")')
    add_amp_arg(parser, 'the backbone, neck and heads compute in reduced precision, each handing '
                'on float32')
    parser.add_argument('--allow-partial', action='store_true',
                        help='test even if the checkpoint does not fit the model (missing or '
                        'unexpected keys, other shapes); without it that is an error')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    checkpoint = checked_checkpoint(args.checkpoint)
    setup_launcher(cfg, args.launcher, args.local_rank)
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = checkpoint
    if not args.allow_partial:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='CheckpointFitHook')]
    if args.amp:
        set_reduced_precision(cfg, amp_dtype(args.amp))
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise CommandLineError('--tta needs tta_model and tta_pipeline in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise CommandLineError(f'--out must be a .pkl or .pickle file, got {args.out}')
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, (list, tuple)) else
                              [evaluator]) + [dump]
    try:
        run(cfg, 'test')
    except CheckpointMismatchError as err:
        raise CommandLineError(f'{args.checkpoint} does not fit the model of {args.config}: {err}; '
                               'pass --allow-partial to test it anyway') from None


if __name__ == '__main__':
    run_cli(main)
