"""Convert an official CrossFormer checkpoint for mmpretrain 1, mmdet 3 or mmseg 1.

    python tools/convert_checkpoint.py crossformer-s.pth checkpoints/crossformer_s_in1k.pth

Takes an ImageNet classifier, an mmdet 2.x detector or an mmseg 0.x segmentor of the official
repository (detected from its keys), reads it with safe ``weights_only`` loading and writes an
mmengine checkpoint that the matching config of this repository loads with no missing and no
unexpected keys (``load_from=...`` or ``init_cfg=dict(type='Pretrained', ...)``).
"""
import argparse
import os
import os.path as osp
import sys

from crossformer_mm.checkpoint import UnsafeCheckpointError
from crossformer_mm.convert import KIND_NAMES, convert_checkpoint


def output_path(src: str, dst: str) -> str:
    """Where to write: ``dst``, or ``dst/<src name>_converted.pth`` for a directory (an existing
    one, or a path ending in a separator, which is created). Never the input file itself."""
    if osp.isdir(dst) or dst.endswith(('/', os.sep)):
        os.makedirs(dst, exist_ok=True)
        dst = osp.join(dst, osp.splitext(osp.basename(src))[0] + '_converted.pth')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ValueError(f'the output {dst} is the input checkpoint; write the converted one '
                         'elsewhere (a directory gets <name>_converted.pth)')
    parent = osp.dirname(osp.abspath(dst))
    if osp.isdir(parent) and not os.access(parent, os.W_OK):
        raise ValueError(f'cannot write {dst}: the directory {parent} is not writable')
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args()
    try:
        args.dst = output_path(args.src, args.dst)
        conv = convert_checkpoint(args.src, args.dst)
    except (ValueError, OSError, UnsafeCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}: {KIND_NAMES[conv.kind]}')
    print('\n'.join(conv.summary()))
    print(f'saved {len(conv.state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
