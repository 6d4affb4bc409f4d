"""Write configs/official_recipes.yml: the recipe of every official config, normalized.

    python tools/official_recipes.py MAIN_DIR MAIN_COMMIT CROSSFORMER_DIR CROSSFORMER_COMMIT

MAIN_DIR and CROSSFORMER_DIR are local copies of github.com/cheerss/CrossFormer at the given
commits of its branches ``main`` (CrossFormer++) and ``crossformer`` (the ICLR release), e.g.
``git --git-dir REPO archive COMMIT | tar -x -C DIR``. Nothing is fetched. The detection and
segmentation configs are read with mmengine's ``Config.fromfile``; the ImageNet recipe is
``config.py``'s defaults, the variant's yaml and ``main.py``'s command-line defaults, read
without running the official code. Every recipe goes through
:func:`crossformer_mm.recipes.normalize`, the same as the tests apply to this repository's
configs.
"""
import argparse
import ast
import sys
from pathlib import Path

import yaml
from mmengine.config import Config

from crossformer_mm.recipes import normalize, normalize_classification

OUT = Path(__file__).resolve().parents[1] / 'configs' / 'official_recipes.yml'
BRANCHES = ('main', 'crossformer')
# The GPUs the per-GPU batch of each kind of official config ran on:
# detection/README.md: "Models are trained with batch size 16 on 8 V100 GPUs";
# segmentation/README.md: "For Semantic FPN, models are trained for 80K iterations with batch
# size 16" (the configs: 4 images per GPU); UPerNet: its training example, dist_train.sh with 8;
# README.md: "--nproc_per_node 8 main.py ... --batch-size 128" for every ImageNet model.
GPUS = {'detection': 8, 'fpn': 4, 'upernet': 8}
CLS_GPUS, CLS_BATCH = 8, 128


def dense_recipes(root: Path, task: str) -> dict:
    recipes = {}
    for path in sorted((root / task / 'configs').rglob('*.py')):
        if '_base_' in path.parts:
            continue
        gpus = GPUS['detection'] if task == 'detection' else GPUS[path.name.split('_')[0]]
        recipes[str(path.relative_to(root))] = normalize(Config.fromfile(path), gpus=gpus)
    return recipes


def yacs_defaults(config_py: Path) -> dict:
    """``config.py``'s ``_C`` as nested dicts: each ``_C.A.B = <literal>`` or ``CN()``."""
    settings = {}
    for node in ast.parse(config_py.read_text()).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)):
            continue
        *path, leaf = ast.unparse(node.targets[0]).split('.')
        if path[:1] != ['_C']:
            continue
        parent = settings
        for key in path[1:]:
            parent = parent[key]
        is_node = isinstance(node.value, ast.Call)  # CN()
        parent[leaf] = {} if is_node else ast.literal_eval(node.value)
    return settings


def merge(settings: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict):
            merge(settings[key], value)
        else:
            settings[key] = value


def command_line(main_py: Path) -> tuple:
    """``main.py``'s argparse defaults, and the settings ``update_config`` always sets from
    them (``config.TRAIN.EPOCHS = args.epochs``, ...) -- what a run without options gets."""
    tree = ast.parse(main_py.read_text())
    defaults = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'add_argument'
                and node.args and isinstance(node.args[0], ast.Constant)):
            name = node.args[0].value.lstrip('-').replace('-', '_')
            default = [k.value for k in node.keywords if k.arg == 'default']
            defaults[name] = ast.literal_eval(default[0]) if default else None
    config = next(n for n in ast.walk(ast.parse((main_py.parent / 'config.py').read_text()))
                  if isinstance(n, ast.FunctionDef) and n.name == 'update_config')
    always = {}
    for node in config.body:  # top-level statements only: the `if args.x:` ones are options
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute)
                and ast.unparse(node.value).startswith('args.')):
            always[ast.unparse(node.targets[0]).split('.', 1)[1]] = defaults[node.value.attr]
    return defaults, always


def classification_recipes(root: Path) -> dict:
    defaults, always = command_line(root / 'main.py')
    recipes = {}
    for path in sorted((root / 'configs').rglob('*.yaml')):
        settings = yacs_defaults(root / 'config.py')
        merge(settings, yaml.safe_load(path.read_text()))
        for dotted, value in always.items():
            *parents, leaf = dotted.split('.')
            node = settings
            for key in parents:
                node = node[key]
            node[leaf] = value
        cros = settings['MODEL']['CROS']
        if 'INTERVAL' not in cros:  # the ICLR code's LDA takes groups H // G apart
            size = settings['DATA']['IMG_SIZE'] // 4
            cros['INTERVAL'] = [(size >> i) // g for i, g in enumerate(cros['GROUP_SIZE'])]
        recipes[str(path.relative_to(root))] = normalize_classification(
            settings, CLS_BATCH, CLS_GPUS, defaults)
    return recipes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('main_dir', type=Path)
    parser.add_argument('main_commit')
    parser.add_argument('crossformer_dir', type=Path)
    parser.add_argument('crossformer_commit')
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args(argv)
    dirs = dict(main=args.main_dir, crossformer=args.crossformer_dir)
    commits = dict(main=args.main_commit, crossformer=args.crossformer_commit)
    for branch in BRANCHES:
        if len(commits[branch]) != 40:
            sys.exit(f'{commits[branch]!r}: give the full 40-digit commit of {branch}')
    recipes = {}
    for branch in BRANCHES:
        found = {**dense_recipes(dirs[branch], 'detection'),
                 **dense_recipes(dirs[branch], 'segmentation'),
                 **classification_recipes(dirs[branch])}
        recipes.update({f'{branch}:{path}': recipe for path, recipe in found.items()})
    header = ('# The official recipes of github.com/cheerss/CrossFormer, normalized by\n'
              '# crossformer_mm.recipes; written by tools/official_recipes.py, do not edit.\n'
              '# Keys: <branch>:<path in the repository>.\n')
    text = yaml.safe_dump(dict(commits=commits, recipes=recipes), sort_keys=False,
                          default_flow_style=None, width=100)
    args.out.write_text(header + text)
    print(f'{len(recipes)} recipes -> {args.out}')


if __name__ == '__main__':
    main()
