"""The arch and input sizes that show every case of a captured backbone graph, shared by the
capture tests of the backbone (``tests/models/backbones/test_export.py``) and of
``tools/deploy.py`` (``tests/tools/test_deploy_tool.py``)."""
import pytest
import torch

from crossformer_mm import CrossFormer

# Stage 1 has SDA and LDA (G * I = 16 does not divide most sizes below); stages 3 and 4 are one
# whole-map group at some sizes and not at others (G = 3).
ARCH = dict(embed_dims=32, depths=[2, 1, 2, 1], num_heads=[1, 2, 4, 8], group_size=[4, 4, 3, 3],
            interval=[4, 2, 2, 1], with_acl=False)
CAPTURE = (2, 64, 96)                 # stage 4: 2 x 3, one whole-map group
SIZES = [(1, 100, 164),               # padded spans everywhere, stage 4 not whole (3 x 5)
         (1, 160, 96),                # stage 4: 5 x 3, whole (W <= G)
         (3, 72, 64),                 # batch 3, stages 3 and 4 whole
         (1, 224, 224),               # stage 4 7 x 7: G = 3 groups, padded
         (1, 32, 32),                 # the smallest input: stage 4 is 1 x 1
         (2, 32, 40)]                 # stage 4 1 x 1, stage 3 2 x 2 (whole)


def model(arch: dict = ARCH) -> CrossFormer:
    torch.manual_seed(0)
    m = CrossFormer(arch, drop_path_rate=0.).eval()
    for p in m.parameters():  # LayerNorms start at 1 / 0: perturb so they count
        p.data.add_(torch.randn_like(p) * 0.02)
    return m


def assert_equal_to_eager(m, run, sizes=SIZES):
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            refs = m(x)
            outs = run(x)
        assert len(outs) == 4
        for out, ref in zip(outs, refs):
            assert tuple(out.shape) == tuple(ref.shape)
            torch.testing.assert_close(torch.as_tensor(out), ref, rtol=1e-4, atol=1e-4)


def onnx_runner(path):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]
