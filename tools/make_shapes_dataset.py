"""Write the synthetic shapes dataset (see tools/shapes.py).

    python tools/make_shapes_dataset.py data/shapes --num-train 2000 --num-val 100 --seed 0
"""
import argparse

from shapes import CLASSES, SHAPES, make_shapes_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/shapes')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--size', type=int, default=64, help='image side in pixels')
    parser.add_argument('--max-shapes', type=int, default=3, help='shapes per image at most')
    parser.add_argument('--classes', nargs='+', default=list(CLASSES), choices=list(SHAPES),
                        help='the shapes to draw, in label order (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    paths = make_shapes_dataset(args.out_dir, args.num_train, args.num_val, seed=args.seed,
                                size=args.size, max_shapes=args.max_shapes,
                                classes=args.classes)
    print(f'Wrote {args.num_train} train and {args.num_val} val images of '
          f'{", ".join(args.classes)} to {args.out_dir} ({", ".join(paths.values())})')


if __name__ == '__main__':
    main()
