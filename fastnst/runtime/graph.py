"""The transformer network as an ONNX graph, built from a model file's weights with
``onnx.helper`` (no torch, no export step, nothing cached on disk: building takes a few
milliseconds, so the one shared file stays the only thing a user needs).

Every conditional instance norm takes its affine terms as graph inputs instead of its
tables: the caller mixes γ/β from the blend weights in NumPy, so styles, blends and
per-pixel region maps (``[N, C, H, W]`` γ/β) all run through one graph. Two variants
serve tiling: ``fixed`` norms take a whole-image ``scale``/``shift`` instead of computing
their own statistics, and ``stop_at`` ends the graph at a norm layer's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastnst.modelfile import HEAD_CONV, blur_kernel

OPSET = 17
EPS = 1e-5
NARROW_OUT = 4  # convs with at most this many output channels run on 2x2 blocks


@dataclass(frozen=True)
class Layer:
    """One padded conv + norm of the network, in the order the norms run."""

    name: str
    kernel: int
    stride: int
    relu: bool


def layers(num_residual: int) -> list[Layer]:
    """The network's conv/norm layers in execution order (the order of its norm tables)."""
    found = [Layer("encoder.0", 9, 1, True), Layer("encoder.1", 3, 2, True)]
    found.append(Layer("encoder.2", 3, 2, True))
    for i in range(num_residual):
        found += [Layer(f"residuals.{i}.first", 3, 1, True)]
        found += [Layer(f"residuals.{i}.second", 3, 1, False)]
    found += [Layer("up1.block", 3, 1, True), Layer("up2.block", 3, 1, True)]
    return [*found, Layer("head", 9, 1, False)]


def space_to_depth_kernel(weight: np.ndarray) -> np.ndarray:
    """The kernel ``[4 O, 4 C, k', k']`` (k' = ceil((k + 1) / 2)) that, applied to a 2x2
    ``SpaceToDepth`` of the input, gives the 2x2 ``DepthToSpace`` (DCR) blocks of the
    stride-1 valid conv by ``weight`` ``[O, C, k, k]``. Output pixel (2Y + a, 2X + b) reads
    input row 2Y + a + i = 2(Y + p) + q: tap (p, q) of the blocks holds tap i = 2p + q - a."""
    out_ch, in_ch, k, _ = weight.shape
    taps = k // 2 + 1
    blocks = np.zeros((2, 2, out_ch, 2, 2, in_ch, taps, taps), np.float32)  # a b o q s c p r
    for a, b, q, s in np.ndindex(2, 2, 2, 2):
        for p, r in np.ndindex(taps, taps):
            i, j = 2 * p + q - a, 2 * r + s - b
            if 0 <= i < k and 0 <= j < k:
                blocks[a, b, :, q, s, :, p, r] = weight[:, :, i, j]
    return blocks.reshape(4 * out_ch, 4 * in_ch, taps, taps)


def conv_nodes(
    x: str, weight: np.ndarray, bias: np.ndarray, stride: int, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """The valid conv of the padded ``x`` as ONNX nodes and initializers (named from
    ``prefix``) and its output's name. A wide kernel with a few output channels (the head:
    3, or 4 with a recurrent gate) runs as the same conv over 2x2 space-to-depth blocks:
    onnxruntime's CPU convs work in blocks of 8-16 output channels, so 3 left most of each
    block idle (the head took 35 % of ``classics-lite``'s time; this way 2.6x less). Same
    sums, reordered: outputs agree to float rounding."""
    inits: list[onnx.TensorProto] = []

    def const(stem: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, f"{prefix}_{stem}"))
        return inits[-1].name

    def node(kind: str, inputs: list[str], **attrs: object) -> onnx.NodeProto:
        return helper.make_node(kind, inputs, [f"{prefix}_{kind.lower()}"], **attrs)

    if stride != 1 or weight.shape[0] > NARROW_OUT or weight.shape[2] < 3:
        conv = node("Conv", [x, const("w", weight), const("b", bias)], strides=[stride] * 2)
        return [conv], inits, conv.output[0]
    # Pad the bottom/right edge to an even size (the extra zeros reach no kept output),
    # convolve the blocks, put the pixels back and crop to the valid conv's size.
    size = node("Shape", [x], start=2, end=4)
    odd = node("Mod", [size.output[0], const("two", np.array([2, 2], np.int64))])
    pads = node("Concat", [const("begin", np.zeros(6, np.int64)), odd.output[0]], axis=0)
    even = node("Pad", [x, pads.output[0]], mode="constant")
    blocks = node("SpaceToDepth", [even.output[0]], blocksize=2)
    kernel = const("w", space_to_depth_kernel(weight))
    conv = node("Conv", [blocks.output[0], kernel, const("b", np.tile(bias, 4))])
    pixels = node("DepthToSpace", [conv.output[0]], blocksize=2, mode="DCR")
    shrink = const("shrink", np.array([weight.shape[2] - 1] * 2, np.int64))
    valid = node("Sub", [size.output[0], shrink])
    start, axes = const("start", np.zeros(2, np.int64)), const("axes", np.array([2, 3], np.int64))
    crop = node("Slice", [pixels.output[0], start, valid.output[0], axes])
    nodes = [size, odd, pads, even, blocks, conv, pixels, valid, crop]
    return nodes, inits, crop.output[0]


class _Builder:
    def __init__(
        self,
        weights: dict[str, np.ndarray],
        fixed: bool,
        stop_at: int | None,
        upsample: str,
        padding: str,
        antialias: bool,
    ) -> None:
        self.weights, self.fixed, self.stop_at = weights, fixed, stop_at
        self.upsample, self.padding, self.antialias = upsample, padding, antialias
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs = [_value("image")]
        self.count = 0
        self.norm_index = 0
        self.probe: str | None = None

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv_norm(self, x: str, layer: Layer) -> str | None:
        """Pad, conv, norm (and ReLU); None once the probed layer's input is reached."""
        weight = self.weights[f"{layer.name}.conv.weight"]
        if self.antialias and (layer.stride == 2 or layer.name.startswith("up")):
            x = self.blur(x, weight.shape[1])
        pad = layer.kernel // 2
        pads = self.const("pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))
        x = self.op("Pad", [x, pads], mode="reflect" if self.padding == "reflect" else "constant")
        x = self.conv(x, weight, self.weights[f"{layer.name}.conv.bias"], layer.stride)
        index = self.norm_index
        self.norm_index += 1
        if index == self.stop_at:
            self.probe = x
            return None
        if self.fixed:
            scale, shift = f"scale{index}", f"shift{index}"
        else:
            channels = self.weights[f"{layer.name}.conv.bias"].shape[0]
            ones = self.const("ones", np.ones(channels, np.float32))
            zeros = self.const("zeros", np.zeros(channels, np.float32))
            x = self.op("InstanceNormalization", [x, ones, zeros], epsilon=EPS)
            scale, shift = f"gamma{index}", f"beta{index}"
        self.inputs += [_value(scale), _value(shift)]
        x = self.op("Add", [self.op("Mul", [x, scale]), shift])
        return self.op("Relu", [x]) if layer.relu else x

    def blur(self, x: str, channels: int) -> str:
        """Each channel filtered by :func:`~fastnst.modelfile.blur_kernel`, reflect-padded
        (the model's ``antialias``: before each stride-2 conv and after each upsampling, as
        :func:`fastnst.model.binomial_blur`)."""
        pads = self.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
        padded = self.op("Pad", [x, pads], mode="reflect")
        return self.op("Conv", [padded, self.const("blur", blur_kernel(channels))], group=channels)

    def with_head_guide(self, x: str) -> str:
        """The head's input: the decoder's features, plus (a recurrent network with
        ``guide_head``, whose head weights take more inputs than the decoder gives) the
        guide, the last channels of the ``image`` input."""
        extra = self.weights[HEAD_CONV].shape[1] - self.weights["up2.block.conv.weight"].shape[0]
        if extra <= 0:
            return x
        start = self.const("start", np.array([-extra], np.int64))
        end = self.const("end", np.array([np.iinfo(np.int64).max], np.int64))
        axes = self.const("axes", np.array([1], np.int64))
        guide = self.op("Slice", ["image", start, end, axes])
        return self.op("Concat", [x, guide], axis=1)

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray, stride: int) -> str:
        nodes, inits, out = conv_nodes(x, weight, bias, stride, self.name("conv"))
        self.nodes += nodes
        self.inits += inits
        return out

    def resize_like(self, x: str, like: str) -> str:
        """Resize ``x`` to the spatial size of ``like`` as torch's ``interpolate`` does:
        ``nearest`` takes source index floor(dst * in / out); ``bilinear`` (align_corners
        False) samples at (dst + 0.5) * in / out - 0.5, clamped at the edges."""
        sizes = self.op(
            "Concat",
            [self.op("Shape", [x], start=0, end=2), self.op("Shape", [like], start=2, end=4)],
            axis=0,
        )
        if self.upsample == "bilinear":
            return self.op(
                "Resize",
                [x, "", "", sizes],
                mode="linear",
                coordinate_transformation_mode="pytorch_half_pixel",
            )
        return self.op(
            "Resize",
            [x, "", "", sizes],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )


def _value(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * 4)


def _forward(b: _Builder, plan: list[Layer]) -> str | None:
    steps = iter(plan)
    x = b.conv_norm("image", next(steps))
    full = x
    x = x and b.conv_norm(x, next(steps))
    half = x
    x = x and b.conv_norm(x, next(steps))
    residual_layers = len(plan) - 6
    for _ in range(residual_layers // 2):
        first = x and b.conv_norm(x, next(steps))
        second = first and b.conv_norm(first, next(steps))
        x = second and b.op("Add", [x, second])
    x = x and b.conv_norm(b.resize_like(x, half), next(steps))
    x = x and b.conv_norm(b.resize_like(x, full), next(steps))
    x = x and b.conv_norm(b.with_head_guide(x), next(steps))
    return x and b.op("Sigmoid", [x])


def build_graph(
    weights: dict[str, np.ndarray],
    num_residual: int,
    fixed: bool = False,
    stop_at: int | None = None,
    upsample: str = "nearest",
    padding: str = "reflect",
    antialias: bool = False,
) -> onnx.ModelProto:
    """The network as an ONNX model: input ``image`` ``[N, 3, H, W]`` (each side at least
    16 px) and per norm layer *k* ``gamma{k}``/``beta{k}`` (or, ``fixed``, ``scale{k}``/
    ``shift{k}``), each ``[N, C, 1, 1]`` or per pixel ``[N, C, H_k, W_k]``. Output
    ``stylized``, or with ``stop_at`` = *k* the input of norm *k* as ``probe``. ``upsample``
    is the decoder's resize (``nearest`` or ``bilinear``, the model's ``net.upsample``);
    ``padding`` the convs' (``reflect`` or ``zero``, its ``net.padding``); ``antialias``
    blurs before each stride-2 conv and after each upsampling (its ``net.antialias``)."""
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    builder = _Builder(weights, fixed, stop_at, upsample, padding, antialias)
    out = _forward(builder, layers(num_residual))
    result = builder.probe if out is None else out
    output_name = "probe" if out is None else "stylized"
    builder.nodes.append(helper.make_node("Identity", [result], [output_name]))
    graph = helper.make_graph(
        builder.nodes, "fastnst", builder.inputs, [_value(output_name)], builder.inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model
