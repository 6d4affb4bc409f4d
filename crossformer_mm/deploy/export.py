"""ONNX export of a config's model, its check in ONNX Runtime, and mmdeploy on current PyTorch.

:func:`export_onnx` captures what the model computes before post-processing, as a flat tuple
of tensors (:class:`TensorOutputs`): a classifier's class scores, a segmentor's logits, a
one-stage detector's per-level class and box maps, a two-stage detector's feature maps and
RPN maps. The input is the image batch the model sees after its data
preprocessor (normalised, padded). :func:`compare_onnxruntime` runs the ONNX file and the
PyTorch model on the same random inputs and reports their largest difference and latencies;
``tools/deploy.py`` does both from the command line.

:func:`mmdeploy_torch2onnx` is mmdeploy's ``torch2onnx`` (the whole model, NMS included) with
what mmdeploy 1.3 needs on current PyTorch, applied during the call only
(:func:`mmdeploy_patches`).
"""
import contextlib
import copy
import functools
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope
from mmengine.runner.checkpoint import load_state_dict
from torch import Tensor, nn

from ..checkpoint import read_checkpoint, unwrap_state_dict

__all__ = [
    'EXPORTERS', 'Comparison', 'TensorOutputs', 'build_model', 'compare_onnxruntime',
    'export_onnx', 'mmdeploy_export', 'mmdeploy_patches', 'mmdeploy_torch2onnx',
    'pair_detections', 'traced_upsampling'
]
Size = Tuple[int, int]
EXPORTERS = ('legacy', 'dynamo')


def build_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """The config's model in eval mode on CPU, with ``checkpoint``'s weights if given (read
    safely), else random ones; the backbone's ``init_cfg`` is not loaded."""
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_state_dict(model, unwrap_state_dict(read_checkpoint(checkpoint)))
    return model.eval()


def _flatten(outputs) -> List[Tensor]:
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = outputs.values()
    return [t for out in outputs for t in _flatten(out)]


class TensorOutputs(nn.Module):
    """A model's outputs before post-processing, as a flat tuple of tensors, from an image
    batch: ``forward(mode='tensor')``. For a two-stage detector, the neck's feature maps and
    the RPN's class and box maps: its RoI heads need the RPN's proposals after NMS, which
    mmdet's ``forward(mode='tensor')`` cannot export (its ONNX box decoding imports the
    mmdet 2 module ``mmdet.core``); mmdeploy exports the whole detector."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.two_stage = hasattr(model, 'rpn_head') and hasattr(model, 'roi_head')

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        if not self.two_stage:
            return tuple(_flatten(self.model(images, mode='tensor')))
        feats = self.model.extract_feat(images)
        return tuple(_flatten(feats) + _flatten(self.model.rpn_head.forward(feats)))


def export_onnx(model: nn.Module, path: str, shape: Size, dynamic: bool = False,
                exporter: str = 'legacy', batch: int = 1,
                opset: Optional[int] = None) -> List[str]:
    """Write ``TensorOutputs(model)`` for (batch, 3, H, W) images to ``path``; returns the
    output names. ``dynamic``: batch, height and width are free (``input`` axes 0, 2, 3);
    ``exporter``: ``'legacy'`` (TorchScript, as mmdeploy) or ``'dynamo'`` (torch.export)."""
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    wrapper = TensorOutputs(model).eval()
    images = torch.randn(batch, 3, *shape)
    with torch.no_grad():
        names = [f'output{i}' for i in range(len(wrapper(images)))]
    kwargs = dict(input_names=['input'], output_names=names, opset_version=opset)
    if exporter == 'dynamo':
        if dynamic:
            dim = torch.export.Dim
            kwargs['dynamic_shapes'] = ({0: dim('batch', min=1, max=64),
                                         2: dim('height', min=32, max=8192),
                                         3: dim('width', min=32, max=8192)}, )
        kwargs.update(dynamo=True, verbose=False)
    else:
        if dynamic:
            axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
            with torch.no_grad():
                for name, out in zip(names, wrapper(images)):
                    axes[name] = {i: f'{name}_{i}' for i in range(out.dim())}
            kwargs['dynamic_axes'] = axes
        kwargs['dynamo'] = False
    with torch.no_grad(), warnings_off(), traced_upsampling():
        torch.onnx.export(wrapper, (images, ), path, **kwargs)
    return names


def _upsample_forward(self, x: Tensor) -> Tensor:
    """mmseg's ``Upsample.forward`` with the output size left to ``F.interpolate``."""
    if self.size:
        return F.interpolate(x, self.size, None, self.mode, self.align_corners)
    # floor(size * scale_factor), as mmseg's int(); interpolation at the scale that size gives
    return F.interpolate(x, None, self.scale_factor, self.mode, self.align_corners,
                         recompute_scale_factor=True)


@contextlib.contextmanager
def traced_upsampling() -> Iterator[None]:
    """mmseg's ``Upsample`` (the FPN head's scale heads, ...) with a size a graph computes.

    It computes its output size as ``int(t * scale_factor)`` of the input's sizes, which the
    legacy exporter freezes at the export size: a dynamic graph then upsamples every other
    size to the export size's maps, and the next ``resize`` back to the right shape hides it
    (wrong values, right shapes). ``F.interpolate`` with ``recompute_scale_factor=True``
    computes the same size (and so the same interpolation) in the graph. Undone on exit; a
    no-op without mmseg.
    """
    try:
        from mmseg.models.utils import wrappers
    except ImportError:
        yield
        return
    forward = wrappers.Upsample.forward
    wrappers.Upsample.forward = _upsample_forward
    try:
        yield
    finally:
        wrappers.Upsample.forward = forward


@contextlib.contextmanager
def warnings_off() -> Iterator[None]:
    """Silence the exporters' warnings (TracerWarnings about Python values, deprecation)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


@dataclass
class Comparison:
    """ONNX Runtime against PyTorch on one input shape (batch, 3, H, W)."""
    shape: Tuple[int, int, int, int]
    max_abs_diff: float
    torch_ms: float
    ort_ms: float
    matched: Optional[Tuple[int, int]] = None  # detections paired, of ORT's (see below)
    diffs: Optional[Dict[str, float]] = None    # per output

    def __str__(self) -> str:
        pairs = (f', {self.matched[0]} of {self.matched[1]} detections paired'
                 if self.matched else '')
        each = (' (' + ', '.join(f'{k} {v:.2e}' for k, v in self.diffs.items()) + ')'
                if self.diffs else '')
        return (f'input {"x".join(map(str, self.shape))}{pairs}: max |ORT - PyTorch| = '
                f'{self.max_abs_diff:.2e}{each}, latency PyTorch {self.torch_ms:.1f} ms, '
                f'ONNX Runtime {self.ort_ms:.1f} ms ({self.torch_ms / self.ort_ms:.2f}x)')


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def compare_onnxruntime(path: str, model: nn.Module, shapes: Sequence[Tuple[int, ...]],
                        runs: int = 3, seed: int = 0) -> List[Comparison]:
    """Run the ONNX file at ``path`` and ``TensorOutputs(model)`` on a random image batch of
    each (B, 3, H, W) shape: largest difference over all outputs and the median latency of
    each, with as many ONNX Runtime threads as PyTorch has. Outputs of different shapes raise
    ValueError."""
    session = _ort_session(path)
    name = session.get_inputs()[0].name
    wrapper = TensorOutputs(model).eval()
    generator = torch.Generator().manual_seed(seed)
    results = []
    for shape in shapes:
        images = torch.randn(*shape, generator=generator)
        feed = {name: images.numpy()}
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(images)]
            got = session.run(None, feed)
            for i, (a, b) in enumerate(zip(got, expected)):
                if a.shape != b.shape:
                    raise ValueError(f'output {i} at input {tuple(shape)}: ONNX Runtime gives '
                                     f'shape {a.shape}, PyTorch {b.shape}')
            diff = max(float(np.abs(a - b).max()) if a.size else 0.
                       for a, b in zip(got, expected))
            torch_ms = _median_ms(lambda: wrapper(images), runs)
            ort_ms = _median_ms(lambda: session.run(None, feed), runs)
        results.append(Comparison(tuple(shape), diff, torch_ms, ort_ms))
    return results


# ------------------------------------------------------------------------------- mmdeploy
def _sdpa_decomposed(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                     dropout_p: float = 0., scale: Optional[float] = None,
                     is_causal: bool = False) -> Tensor:
    """``F.scaled_dot_product_attention`` in plain ops for opset 11, ``scale`` as PyTorch
    means it (a factor on the logits; mmdeploy 1.3's rewrite divides by it). Inference only."""
    if is_causal:
        raise NotImplementedError('causal attention is not rewritten for mmdeploy')
    scale = query.shape[-1]**-0.5 if scale is None else scale
    logits = query @ key.transpose(-2, -1) * scale
    if attn_mask is not None:
        logits = (logits.masked_fill(~attn_mask, -1e34) if attn_mask.dtype == torch.bool else
                  logits + attn_mask)
    return torch.softmax(logits, -1) @ value


def _cast_long(g, value, non_blocking):
    """torch 1.x's ``symbolic_opset9._cast_Long``: ``value`` cast to int64 (ONNX type 7)."""
    return g.op('Cast', value, to_i=7)


def _frame_func(top: int = 1) -> Callable:
    """mmdeploy's ``get_frame_func``: the function that runs ``top`` frames up, by its name in
    the frame's globals."""
    frame = sys._getframe(top)
    name = frame.f_code.co_name
    assert name in frame.f_globals, f'Can not find function: {name} in global.'
    return frame.f_globals[name]


@contextlib.contextmanager
def mmdeploy_patches() -> Iterator[None]:
    """What mmdeploy 1.3 needs on current PyTorch, undone on exit:

    * ``torch.onnx.export`` defaults to the legacy (TorchScript) exporter, whose graph
      mmdeploy's rewriters and symbolics are written for (torch >= 2.9 defaults to dynamo);
    * its rewrite of ``F.scaled_dot_product_attention`` divides the logits by ``scale``
      instead of multiplying, wrong whenever ``scale`` is given: a correct one takes its place;
    * its RoIAlign symbolic imports ``_cast_Long`` from ``torch.onnx.symbolic_opset9``, which
      torch 2.x removed: it is put back (a Cast to int64);
    * its deploy configs export at opset 11, for which torch has no ``aten::unflatten``: the
      opset-13 one serves, as it uses no operator that changed in between;
    * its rewriters find their caller with ``inspect.stack()``, which reads the source of every
      frame on the stack at each rewritten call (seconds per call in a deep stack):
      :func:`_frame_func` finds the same function from the frame alone.
    """
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.core.rewriters import function_rewriter, symbolic_rewriter
    from torch.onnx import symbolic_opset9, symbolic_opset13
    frame_funcs = [(module, module.get_frame_func)
                   for module in (function_rewriter, symbolic_rewriter)]
    for module, _ in frame_funcs:
        module.get_frame_func = _frame_func
    add_cast = not hasattr(symbolic_opset9, '_cast_Long')
    if add_cast:
        symbolic_opset9._cast_Long = _cast_long
    records = FUNCTION_REWRITER._registry._rewrite_records.get(
        'torch.nn.functional.scaled_dot_product_attention', [])
    saved = [(record, record['_object']) for record in records]
    export = torch.onnx.export
    torch.onnx.export = functools.partial(export, dynamo=False)
    for record, _ in saved:
        record['_object'] = lambda *args, **kwargs: _sdpa_decomposed(*args, **kwargs)
    opsets = range(11, 13)
    for opset in opsets:
        torch.onnx.register_custom_op_symbolic('aten::unflatten', symbolic_opset13.unflatten,
                                               opset)
    try:
        yield
    finally:
        for module, func in frame_funcs:
            module.get_frame_func = func
        torch.onnx.export = export
        for record, obj in saved:
            record['_object'] = obj
        if add_cast:
            del symbolic_opset9._cast_Long
        for opset in opsets:
            torch.onnx.unregister_custom_op_symbolic('aten::unflatten', opset)


def mmdeploy_torch2onnx(img, work_dir: str, save_file: str, deploy_cfg, model_cfg,
                        checkpoint: Optional[str] = None, device: str = 'cpu') -> None:
    """``mmdeploy.apis.torch2onnx`` (same arguments) under :func:`mmdeploy_patches`."""
    from mmdeploy.apis import torch2onnx
    with mmdeploy_patches(), traced_upsampling(), warnings_off():
        torch2onnx(img, work_dir, save_file, deploy_cfg, model_cfg, checkpoint, device)


def _ort_session(path: str, custom_ops: Optional[str] = None):
    """A CPU session with as many threads as PyTorch, optionally with a custom-ops library."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    # Idle threads that spin would steal the CPU from PyTorch's timed runs.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if custom_ops:
        options.register_custom_ops_library(custom_ops)
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def mmdeploy_export(deploy_cfg: Config, model_cfg: Config, path: str,
                    checkpoint: Optional[str] = None, shape: Optional[Size] = None,
                    runs: int = 3, seed: int = 0) -> Tuple[List[str], List[Comparison]]:
    """mmdeploy's ONNX Runtime export of the whole model to ``path`` (:func:`mmdeploy_torch2onnx`),
    then the graph against the PyTorch model with the same rewrites (mmdeploy's
    ``RewriterContext``): the output names and one comparison per input size.

    ``shape`` (H, W) is the size the export input is resized to (``onnx_config.input_shape``),
    else the one the config's test pipeline gives. A dynamic deploy config (``dynamic_axes``)
    is also checked at a larger size. Images are random (seeded); without a checkpoint both
    models get the same random weights.
    """
    import os.path as osp
    from mmdeploy.apis import build_task_processor
    from mmdeploy.backend.onnxruntime.init_plugins import get_ops_path
    from mmdeploy.core import RewriterContext
    from mmdeploy.utils import get_backend

    deploy_cfg = copy.deepcopy(deploy_cfg)
    if shape is not None:
        deploy_cfg.onnx_config.input_shape = [shape[1], shape[0]]
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*(shape or (512, 512)), 3), np.uint8)
    work_dir, save_file = osp.split(osp.abspath(path))
    torch.manual_seed(seed)
    mmdeploy_torch2onnx(image, work_dir, save_file, deploy_cfg, model_cfg, checkpoint, 'cpu')

    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    torch.manual_seed(seed)
    model = processor.build_pytorch_model(checkpoint)
    session = _ort_session(path, get_ops_path() or None)
    names = [o.name for o in session.get_outputs()]
    sizes = [shape]
    if shape is not None and deploy_cfg.onnx_config.get('dynamic_axes'):
        sizes.append((shape[0] + 32, shape[1] + 64))
    rewrites = RewriterContext(cfg=deploy_cfg, backend=get_backend(deploy_cfg).value, opset=11)
    results = []
    with mmdeploy_patches(), rewrites, torch.no_grad(), warnings_off():
        for size in sizes:
            if size != shape:
                image = rng.integers(0, 256, (*size, 3), np.uint8)
            data, inputs = processor.create_input(image, size and [size[1], size[0]],
                                                  data_preprocessor=model.data_preprocessor)
            inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            feed = {session.get_inputs()[0].name: inputs.numpy()}

            def reference(inputs=inputs, samples=data['data_samples']):
                return _flatten(model.forward(inputs, samples, mode='predict'))

            expected = [t.numpy() for t in reference()]
            got = session.run(None, feed)
            torch_ms = _median_ms(reference, runs)
            ort_ms = _median_ms(lambda: session.run(None, feed), runs)
            matched = None
            if names[:2] == ['dets', 'labels']:
                got, expected, matched = pair_detections(got, expected)
            diffs = {name: _max_abs_diff(a, b) for name, a, b in zip(names, got, expected)}
            results.append(Comparison(tuple(inputs.shape), max(diffs.values()), torch_ms,
                                      ort_ms, matched, diffs))
    return names, results


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float('inf')
    return float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.


def pair_detections(got: List[np.ndarray], expected: List[np.ndarray], tol: float = 0.01
                    ) -> Tuple[List[np.ndarray], List[np.ndarray], Tuple[int, int]]:
    """mmdeploy's detections (``dets``, ``labels`` and maybe ``masks`` of one image) of ONNX
    Runtime and of PyTorch, each ORT row paired with the PyTorch row of the same label whose
    box and score are nearest, if no coordinate (pixels) nor the score differs by more than
    ``tol``. NMS and top-k keep other boxes among near ties when the numbers differ in their
    last bits (random weights make many), so the rows are compared in pairs, not in order; the
    score tells apart equal boxes (boxes clipped to a border). Returns both restricted to the
    pairs, and (pairs, ORT rows)."""
    dets, labels = got[0][0], got[1][0]
    ref_dets, ref_labels = expected[0][0], expected[1][0]
    dist = np.abs(dets[:, None, :5] - ref_dets[None, :, :5]).max(-1)
    dist[labels[:, None] != ref_labels[None, :]] = np.inf
    nearest = dist.argmin(1) if dist.size else np.zeros(0, int)
    ok = dist[np.arange(len(dets)), nearest] <= tol if dist.size else np.zeros(0, bool)
    return ([out[0][ok][None] for out in got], [out[0][nearest[ok]][None] for out in expected],
            (int(ok.sum()), len(dets)))
