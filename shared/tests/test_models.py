"""Model shapes, parameter counts, output naming, decode, ONNX export/parity, cv2.FaceDetectorYN."""
import numpy as np
import pytest
import torch

from shared.metrics import count_params
from shared.models import (OUTPUT_NAMES, Pipeline, RestorationNet, YuNet, build_models, decode,
                           nms_boxes)
from shared.models.export import check_parity, export_onnx, run_onnx

SIZE = 256
RESTORATION_PARAMS = 59_059  # channels (8, 32, 64, 64); the study quotes ~61k
YUNET_N_PARAMS = 75_856      # libfacedetection.train yunet_n ("75.9k")


def randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Non-trivial weights and BN statistics, so that export parity means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_restoration_shapes_params_identity():
    net = RestorationNet(channels=(8, 32, 64, 64))
    assert count_params(net) == RESTORATION_PARAMS
    assert abs(count_params(net) - 61_000) / 61_000 < 0.15
    x = torch.rand(2, 3, 64, 96)
    y = net(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero-initialised last conv: identity at init
    assert count_params(RestorationNet(channels=(16, 64, 128, 128))) > 3 * RESTORATION_PARAMS
    with pytest.raises(AssertionError, match="divisible by 16"):
        net(torch.rand(1, 3, 64, 72))


def test_residual_blocks_drop_to_the_identity():
    """drop_blocks removes exactly the named residual blocks; each removal leaves the block's input."""
    from shared.models.restoration import Skipped, drop_blocks, dropped_blocks, residual_blocks
    net = RestorationNet(channels=(8, 32, 64, 64))
    names = residual_blocks(net)
    # one DecoderBlock per decoder stage + the head's, and the second block of the last two encoder stages
    assert names == ["encoders.2.1", "encoders.3.1", "decoders.0.decode", "decoders.1.decode",
                     "decoders.2.decode", "decoders.3.decode", "head.0"]
    x = torch.rand(1, 8, 32, 32)
    drop_blocks(net, ["head.0", "decoders.3.decode"])
    assert isinstance(net.head[0], Skipped) and torch.equal(net.head[0](x), x)
    assert dropped_blocks(net) == ["decoders.3.decode", "head.0"]
    assert residual_blocks(net) == names[:5]
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="'stem' is not a removable residual block"):
        drop_blocks(net, ["stem"])


def test_yunet_params_and_outputs():
    det = YuNet().eval()
    assert count_params(det) == YUNET_N_PARAMS
    assert OUTPUT_NAMES == ("cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8",
                            "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32")
    x = torch.rand(2, 3, 128, 192) * 255
    outs, raw = det(x), det.forward_train(x)
    assert len(outs) == len(raw) == 12
    for name, o, r in zip(OUTPUT_NAMES, outs, raw):
        kind, s = name.split("_")
        c = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}[kind]
        assert o.shape == (2, (128 // int(s)) * (192 // int(s)), c), name
        expect = r.sigmoid() if kind in ("cls", "obj") else r
        torch.testing.assert_close(o, expect)
    # layout: cell index = row * W_s + col of the NCHW map
    maps = det.head_maps(x)
    torch.testing.assert_close(raw[6][1, 2 * 24 + 7], maps[2][0][1, :, 2, 7])
    keys = det.state_dict().keys()  # libfacedetection.train names, so its checkpoints load
    for k in ("backbone.model0.conv1.weight", "backbone.model5.conv2.bn.running_var",
              "neck.lateral_convs.2.conv2.weight", "bbox_head.multi_level_share_convs.0.0.bn.bias",
              "bbox_head.multi_level_kps.2.conv2.bias", "bbox_head.multi_level_obj.1.conv1.weight"):
        assert k in keys
    with pytest.raises(AssertionError, match="multiples of 32"):
        det(torch.rand(1, 3, 240, 240))


def one_cell_outputs(stride_i=1, row=3, col=5, size=SIZE):
    """Outputs with a single confident cell at level stride_i (cls .81, obj 1 -> score .9)."""
    outs = []
    for j in range(4):
        for i, s in enumerate((8, 16, 32)):
            c = (1, 1, 4, 10)[j]
            outs.append(np.zeros((1, (size // s) ** 2, c), np.float32))
    idx = row * (size // (8, 16, 32)[stride_i]) + col
    outs[stride_i][0, idx] = 0.81
    outs[3 + stride_i][0, idx] = 1.0
    outs[6 + stride_i][0, idx] = [0.5, -0.25, np.log(2.0), 0.0]
    outs[9 + stride_i][0, idx] = np.arange(10) / 10
    return outs


def test_decode_by_hand():
    faces = decode(one_cell_outputs(), SIZE, score_thr=0.5)[0]
    s = 16.0
    cx, cy, w, h = (5 + 0.5) * s, (3 - 0.25) * s, 2 * s, s
    lm = [((5 + 2 * k / 10) * s, (3 + (2 * k + 1) / 10) * s) for k in range(5)]
    expect = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] + list(np.ravel(lm)) + [0.9]
    assert faces.shape == (1, 15)
    np.testing.assert_allclose(faces[0], expect, rtol=1e-6, atol=1e-4)
    xywh = decode(one_cell_outputs(), SIZE, score_thr=0.5, box="xywh")[0]
    np.testing.assert_allclose(xywh[0, 2:4], [w, h], rtol=1e-6)
    assert decode(one_cell_outputs(), SIZE, score_thr=0.95)[0].shape == (0, 15)


def test_decode_non_square_uses_width_for_columns():
    w_in, h_in = 192, 128  # cv2 order: (width, height); stride 32 grid: 6 cols x 4 rows
    outs = [np.zeros((1, (h_in // s) * (w_in // s), c), np.float32)
            for c in (1, 1, 4, 10) for s in (8, 16, 32)]
    idx = 2 * 6 + 5  # row 2, col 5
    outs[2][0, idx], outs[5][0, idx] = 1.0, 1.0
    faces = decode(outs, (w_in, h_in), score_thr=0.5)[0]
    np.testing.assert_allclose(faces[0, :4], [5 * 32 - 16, 2 * 32 - 16, 5 * 32 + 16, 2 * 32 + 16])
    np.testing.assert_allclose(faces[0, 4:6], [160, 64])


def test_nms_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 60, (300, 2))
    rects = np.concatenate([xy, rng.integers(5, 40, (300, 2))], 1).astype(np.float64)
    scores = rng.random(300).astype(np.float32)
    for thr, iou, k in ((0.1, 0.45, 5000), (0.5, 0.3, 50), (0.0, 0.6, 0)):
        ref = np.asarray(cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), thr, iou, 1.0, k))
        np.testing.assert_array_equal(nms_boxes(rects, scores, thr, iou, k), ref.ravel())


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    p = build_models({"input_size": SIZE})
    for i, m in enumerate((p.enhancer, p.denoiser, p.detector)):
        randomise(m, seed=i)
    with torch.no_grad():  # wide boxes (exp(1.2) * stride) so NMS has work to do
        for m in p.detector.bbox_head.multi_level_bbox:
            m.conv2.bias.copy_(torch.tensor([0.0, 0.0, 1.2, 1.2]))
    return p.eval()


def test_pipeline_chain_scaling_and_intermediates(pipe):
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        outs, enhanced, denoised = pipe(x, return_intermediate=True)
        torch.testing.assert_close(enhanced, pipe.enhancer(x))
        torch.testing.assert_close(denoised, pipe.denoiser(enhanced))
        ref = pipe.detector(denoised * 255.0)
        raw = pipe(x, raw=True)
    for k, (a, b, r) in enumerate(zip(outs, ref, raw)):
        torch.testing.assert_close(a, b)  # = detector(255 * denoiser(enhancer(x)))
        torch.testing.assert_close(a, r.sigmoid() if k < 6 else r)  # raw: cls/obj logits
    assert pipe.input_size == (SIZE, SIZE)
    small = build_models({"enhancer": {"channels": [4, 16, 32, 32]}, "input_size": [128, 192]})
    assert small.input_size == (128, 192) and small.enhancer.channels == (4, 16, 32, 32)
    assert count_params(small.denoiser) == RESTORATION_PARAMS
    with pytest.raises(KeyError):
        build_models({"enhancr": {}})


@pytest.mark.parametrize("which", ["enhancer", "detector", "pipeline"])
def test_onnx_export_parity(pipe, which, tmp_path):
    model = pipe if which == "pipeline" else getattr(pipe, which)
    names = OUTPUT_NAMES if which != "enhancer" else ("output",)
    size = 128 if which == "enhancer" else SIZE  # the pipeline covers the enhancer at 256
    path = export_onnx(model, tmp_path / f"{which}.onnx", (1, 3, size, size), names, opset=13)
    import onnx
    graph = onnx.load(path).graph
    assert [o.name for o in graph.output] == list(names)
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, size, size]
    ops = {n.op_type for n in graph.node}
    allowed = {"Conv", "ConvTranspose", "Add", "Relu", "MaxPool", "Resize", "Transpose",
               "Reshape", "Sigmoid", "Mul", "Constant"}
    assert ops <= allowed, ops - allowed
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size) * (255.0 if which == "detector" else 1.0)
    diff = check_parity(model, path, x)
    print(f"{which}: ONNX Runtime max abs diff {diff:.3g}")
    assert diff < 1e-4


def test_opencv_face_detector_yn_loads_and_matches_decode(pipe, tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = export_onnx(pipe.detector, tmp_path / "yunet.onnx", (1, 3, SIZE, SIZE), OUTPUT_NAMES)
    fd = cv2.FaceDetectorYN.create(str(path), "", (SIZE, SIZE), 0.02, 0.45, 5000)
    img = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    ok, faces = fd.detect(img)
    assert ok == 1 and faces is not None and faces.shape[1] == 15
    # same model through cv2.dnn, decoded by us, gives exactly FaceDetectorYN's faces
    net = cv2.dnn.readNet(str(path))
    net.setInput(cv2.dnn.blobFromImage(img))
    outs = net.forward(list(OUTPUT_NAMES))
    ours = decode(outs, (SIZE, SIZE), 0.02, 0.45, 5000, box="xywh")[0]
    n_cand = sum(int((np.sqrt(outs[i] * outs[i + 3]) >= 0.02).sum()) for i in range(3))
    assert len(faces) < n_cand  # NMS did suppress something
    assert ours.shape == faces.shape
    np.testing.assert_allclose(ours, faces, rtol=1e-5, atol=1e-3)
    # the ONNX Runtime outputs decode to the same set of faces (the order of near-equal
    # scores may differ between the two runtimes, hence the sort)
    ort_faces = decode(run_onnx(path, cv2.dnn.blobFromImage(img)), SIZE, box="xywh")[0]
    assert ort_faces.shape == faces.shape
    key = lambda f: f[np.lexsort(np.round(f[:, :4], 1).T[::-1])]  # noqa: E731
    np.testing.assert_allclose(key(ort_faces), key(faces), rtol=1e-4, atol=1e-2)
