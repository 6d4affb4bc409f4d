"""Convert an official CrossFormer checkpoint for mmpretrain 1, mmdet 3 or mmseg 1.

    python tools/convert_checkpoint.py crossformer-s.pth checkpoints/crossformer_s_in1k.pth

Takes an ImageNet classifier, an mmdet 2.x detector or an mmseg 0.x segmentor of the official
repository (detected from its keys), reads it with safe ``weights_only`` loading and writes an
mmengine checkpoint that the matching config of this repository loads with no missing and no
unexpected keys (``load_from=...`` or ``init_cfg=dict(type='Pretrained', ...)``).
"""
import argparse
import sys

from crossformer_mm.checkpoint import UnsafeCheckpointError
from crossformer_mm.convert import KIND_NAMES, convert_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args()
    try:
        conv = convert_checkpoint(args.src, args.dst)
    except (ValueError, FileNotFoundError, UnsafeCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}: {KIND_NAMES[conv.kind]}')
    print('\n'.join(conv.summary()))
    print(f'saved {len(conv.state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
