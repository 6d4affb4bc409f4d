"""Print the Params and FLOPs of the whole model of a config, attention products included.

    python tools/get_flops.py configs/retinanet_crossformer_s_1x.py [--shape H [W]]

FLOPs are multiply-adds on one image, attention as executed, and then with long distance
attention counted as the papers count it, which the published tables match (see
:mod:`crossformer_mm.analysis`). The default shape is the papers' for the config's toolbox:
1280 x 800 for mmdet, 512 x 2048 for mmseg, 224 x 224 for mmpretrain.
"""
import argparse
from typing import Optional, Sequence

from mmengine.registry import MODELS, init_default_scope

from crossformer_mm.analysis import count_complexity
from cli import CommandLineError, add_common_args, load_config, run_cli

DEFAULT_SHAPES = {'mmdet': (1280, 800), 'mmseg': (512, 2048), 'mmpretrain': (224, 224)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count the Params and FLOPs of a model')
    add_common_args(parser, launcher=False)
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input image H W, or one size for a square image')
    return parser.parse_args(argv)


def input_shape(shape: Optional[Sequence[int]], scope: Optional[str]) -> tuple:
    """(H, W) from ``--shape`` (one or two positive integers) or the toolbox's default."""
    if shape is None:
        return DEFAULT_SHAPES.get(scope, (224, 224))
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise CommandLineError(f'--shape takes one or two positive integers (H W), got '
                               f'{" ".join(map(str, shape))}')
    return shape[0], shape[-1]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    scope = cfg.get('default_scope')
    shape = input_shape(args.shape, scope)
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    params, flops, published = count_complexity(model, shape)
    line = '=' * 30
    print(f'{line}\nInput shape: (3, {shape[0]}, {shape[1]})\nFlops: {flops / 1e9:.2f} G\n'
          f'Flops, LDA as the papers count it: {published / 1e9:.2f} G\n'
          f'Params: {params / 1e6:.2f} M\n{line}')


if __name__ == '__main__':
    run_cli(main)
