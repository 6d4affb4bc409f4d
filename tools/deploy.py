"""Export a config's model to ONNX, then check it in ONNX Runtime against PyTorch.

    python tools/deploy.py CONFIG [CHECKPOINT] --out model.onnx [--shape H W] [--dynamic]
        [--fold-dpb] [--exporter legacy|dynamo] [--batch N] [--check-shape H W ...]

Works for a classifier (mmpretrain), a detector (mmdet) or a segmentor (mmseg). The graph
takes the image batch the model sees after its data preprocessor (normalised, padded) and
returns the outputs before post-processing (see :mod:`crossformer_mm.deploy.export`). ``--fold-dpb``
first folds the dynamic position biases into tables for ``--shape``
(:func:`crossformer_mm.deploy.fold_position_bias`), so the graph is static. The check runs
both on random inputs of the export shape (and, with ``--dynamic``, of other sizes and batch)
and prints the largest difference and the latency of each. The whole model with NMS and
box decoding is mmdeploy's job: docs/deploy.md.
"""
import argparse
import copy
import importlib.util
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch

from cli import CommandLineError, add_common_args, load_config, run_cli

DEFAULT_SHAPES = {'mmdet': (800, 1344), 'mmseg': (512, 512), 'mmpretrain': (224, 224)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a model to ONNX and check it in '
                                     'ONNX Runtime')
    add_common_args(parser, launcher=False)
    parser.add_argument('checkpoint', nargs='?', help='weights (random weights without)')
    parser.add_argument('--out', required=True, help='the ONNX file to write')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='export input H W (or one size for a square); default 800 1344 '
                        'for mmdet, 512 512 for mmseg, 224 224 for mmpretrain')
    parser.add_argument('--batch', type=int, default=1, help='export batch size')
    parser.add_argument('--dynamic', action='store_true',
                        help='batch, height and width of the input are free in the graph')
    parser.add_argument('--fold-dpb', action='store_true',
                        help='fold the dynamic position biases for --shape first (static)')
    parser.add_argument('--exporter', choices=('legacy', 'dynamo'), default='legacy',
                        help='torch.onnx.export with dynamo=False (TorchScript, as mmdeploy) '
                        'or dynamo=True (torch.export)')
    parser.add_argument('--opset', type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument('--check-shape', type=int, nargs=2, action='append', metavar=('H', 'W'),
                        help='check at this input size (repeatable); default: the export '
                        'size, and with --dynamic two more sizes and batches')
    parser.add_argument('--mmdeploy', metavar='DEPLOY_CONFIG',
                        help="export the whole model (NMS included) with mmdeploy's torch2onnx "
                        'and this deploy config, e.g. configs/deploy/mmdet/detection/'
                        'detection_onnxruntime_dynamic.py, then check it against PyTorch')
    parser.add_argument('--runs', type=int, default=3, help='timed runs per check')
    parser.add_argument('--threads', type=int, help='CPU threads of PyTorch and ONNX Runtime')
    return parser.parse_args(argv)


def export_shape(shape: Optional[Sequence[int]], scope: Optional[str]) -> Tuple[int, int]:
    """(H, W) from ``--shape`` (one or two integers >= 32) or the toolbox's default."""
    if shape is None:
        return DEFAULT_SHAPES.get(scope, (224, 224))
    if len(shape) not in (1, 2) or min(shape) < 32:
        raise CommandLineError(f'--shape takes one or two integers >= 32 (H W), got '
                               f'{" ".join(map(str, shape))}')
    return shape[0], shape[-1]


def check_shapes(args: argparse.Namespace, shape: Tuple[int, int]) -> List[tuple]:
    """(B, 3, H, W) inputs to compare on: ``--check-shape`` sizes, else the export shape, and
    with ``--dynamic`` a larger image and a smaller one with one more image in the batch."""
    h, w = shape
    if args.check_shape:
        if min(min(s) for s in args.check_shape) < 32:
            raise CommandLineError(f'--check-shape sizes must be >= 32, got {args.check_shape}')
        if not args.dynamic and any(tuple(s) != shape for s in args.check_shape):
            raise CommandLineError(f'--check-shape differs from the export shape {h} {w}; '
                                   'add --dynamic to export a graph for other sizes')
        return [(args.batch, 3, *s) for s in args.check_shape]
    shapes = [(args.batch, 3, h, w)]
    if args.dynamic:
        shapes += [(args.batch, 3, h + 32, w + 96), (args.batch + 1, 3, max(32, h - 32), w)]
    return shapes


def require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise CommandLineError(f'{module} is not installed ({what}): '
                               'pip install -e ".[deploy]"')


def main(argv: Optional[Sequence[str]] = None) -> list:
    """Export and check; returns the comparisons (:class:`crossformer_mm.deploy.Comparison`)."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise CommandLineError(f'checkpoint file not found: {args.checkpoint}')
    shape = export_shape(args.shape, cfg.get('default_scope'))
    if args.batch < 1 or args.runs < 1:
        raise CommandLineError(f'--batch and --runs must be >= 1, got {args.batch} and '
                               f'{args.runs}')
    if args.dynamic and args.fold_dpb:
        raise CommandLineError('--fold-dpb makes a graph for --shape only; it cannot be '
                               '--dynamic')
    if args.mmdeploy:
        return run_mmdeploy(args, cfg)
    shapes = check_shapes(args, shape)
    require('onnxruntime', 'the check runs the graph in ONNX Runtime')
    if args.exporter == 'dynamo':
        require('onnxscript', 'the dynamo exporter needs it')
    if args.threads:
        torch.set_num_threads(args.threads)

    from crossformer_mm.deploy import compare_onnxruntime, export_onnx, fold_position_bias
    model = build(cfg, args.checkpoint)
    exported = fold_position_bias(copy.deepcopy(model), [shape]) if args.fold_dpb else model
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    names = export_onnx(exported, args.out, shape, args.dynamic, args.exporter, args.batch,
                        args.opset)
    size_mb = osp.getsize(args.out) / 2**20
    print(f'wrote {args.out} ({size_mb:.1f} MB, {args.exporter} exporter, '
          f'{"dynamic" if args.dynamic else "static"} input {args.batch}x3x{shape[0]}x'
          f'{shape[1]}{", DPB folded" if args.fold_dpb else ""}): outputs {", ".join(names)}')
    # Against the unfolded model: checks the folding as well as the export.
    results = compare_onnxruntime(args.out, model, shapes, args.runs)
    for result in results:
        print(result)
    return results


def build(cfg, checkpoint: Optional[str]):
    """The config's model with the checkpoint's weights; unreadable files in one line."""
    from crossformer_mm.checkpoint import NotACheckpointError, UnsafeCheckpointError
    from crossformer_mm.deploy import build_model
    try:
        return build_model(cfg, checkpoint)
    except (NotACheckpointError, UnsafeCheckpointError) as err:
        raise CommandLineError(str(err)) from None


def run_mmdeploy(args: argparse.Namespace, cfg) -> list:
    """``--mmdeploy``: mmdeploy's export of the whole model, checked against PyTorch."""
    if not osp.isfile(args.mmdeploy):
        raise CommandLineError(f'deploy config not found: {args.mmdeploy}')
    unsupported = [flag for flag, on in (('--dynamic', args.dynamic),
                                         ('--fold-dpb', args.fold_dpb),
                                         ('--exporter dynamo', args.exporter == 'dynamo'),
                                         ('--check-shape', args.check_shape),
                                         ('--batch', args.batch != 1)) if on]
    if unsupported:
        raise CommandLineError(f'{", ".join(unsupported)}: not with --mmdeploy (the deploy '
                               'config says static or dynamic; mmdeploy uses the legacy exporter)')
    require('mmdeploy', '--mmdeploy runs its torch2onnx')
    require('onnxruntime', 'the check runs the graph in ONNX Runtime')
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.config import Config

    from crossformer_mm.deploy import mmdeploy_export
    shape = export_shape(args.shape, cfg.get('default_scope')) if args.shape else None
    names, results = mmdeploy_export(Config.fromfile(args.mmdeploy), cfg, args.out,
                                    args.checkpoint, shape, args.runs)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MB, mmdeploy, '
          f'{osp.basename(args.mmdeploy)}): outputs {", ".join(names)}')
    for result in results:
        print(result)
    return results


if __name__ == '__main__':
    run_cli(main)
