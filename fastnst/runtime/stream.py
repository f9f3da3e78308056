"""Big images layer by layer in row bands, with exact whole-image norm statistics.

A 4K photo's full-resolution activations (32 channels: 1 GB each) do not fit the memory
target, and the multi-pass tiler (:meth:`OnnxStylizer.stylize_tiled`) re-runs every layer
before each norm once per norm (about 8x the network's work). Here each layer's conv output
is computed once, band by band, and kept whole where it is small enough (half and quarter
resolution); its per-channel sums come out of the same graph. The two full-resolution conv
outputs are never kept: the first layer's is computed twice (statistics, then straight into
the second layer) and so is the decoder's last upsampling conv's (statistics, then straight
into the head). About 1.2x the network's work in all.

Only for the ``nearest`` decoder: a nearest resize commutes with the norm and ReLU, so it
is a row/column gather of the stored pre-norm values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from fastnst.runtime.graph import EPS, OPSET, Layer, conv_nodes


@dataclass(frozen=True)
class Step:
    """One conv of a band graph: ``act`` says what is applied to its input first
    (``none``, or ``relu`` of the affine ``x * scale + shift``: the previous norm)."""

    layer: Layer
    act: str


def _value(name: str, elem: int = TensorProto.FLOAT, rank: int = 4) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [None] * rank)


def band_graph(weights: dict[str, np.ndarray], steps: list[Step], keep: bool) -> bytes:
    """Convs on a row band: input ``x`` (already padded for the first conv), for each step
    *j* with ``act`` ``scale{j}``/``shift{j}`` and for each later conv ``pads{j}`` (its
    reflect padding: rows at the image edges only, columns always). Outputs the last conv's
    per-channel ``sum`` and ``sumsq``, and with ``keep`` the band itself as ``y``."""
    nodes, inits, inputs = [], [], [_value("x")]
    x = "x"
    for j, step in enumerate(steps):
        if step.act == "relu":
            inputs += [_value(f"scale{j}"), _value(f"shift{j}")]
            nodes.append(helper.make_node("Mul", [x, f"scale{j}"], [f"mul{j}"]))
            nodes.append(helper.make_node("Add", [f"mul{j}", f"shift{j}"], [f"add{j}"]))
            nodes.append(helper.make_node("Relu", [f"add{j}"], [f"act{j}"]))
            x = f"act{j}"
        if j > 0:
            inputs.append(_value(f"pads{j}", TensorProto.INT64, 1))
            nodes.append(helper.make_node("Pad", [x, f"pads{j}"], [f"pad{j}"], mode="reflect"))
            x = f"pad{j}"
        name = step.layer.name
        weight, bias = weights[f"{name}.conv.weight"], weights[f"{name}.conv.bias"]
        conv, conv_inits, x = conv_nodes(x, weight, bias, step.layer.stride, f"conv{j}")
        nodes += conv
        inits += conv_inits
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [0, 2, 3])
    inits.append(axes)
    nodes.append(helper.make_node("ReduceSum", [x, "axes"], ["sum"], keepdims=0))
    # Opset 17: ReduceSum takes its axes as an input, ReduceSumSquare as an attribute.
    nodes.append(helper.make_node("ReduceSumSquare", [x], ["sumsq"], axes=[0, 2, 3], keepdims=0))
    outputs = [_value("sum", rank=1), _value("sumsq", rank=1)]
    if keep:
        nodes.append(helper.make_node("Identity", [x], ["y"]))
        outputs.append(_value("y"))
    graph = helper.make_graph(nodes, "fastnst_band", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model.SerializeToString()


def conv_size(length: int, layer: Layer) -> int:
    pad = layer.kernel // 2
    return (length + 2 * pad - layer.kernel) // layer.stride + 1


def reflect(index: np.ndarray, length: int) -> np.ndarray:
    """Indices past either end mirrored back (ONNX ``reflect``: the edge is not repeated)."""
    index = np.abs(index)
    return np.where(index >= length, 2 * (length - 1) - index, index)


def source_index(index: np.ndarray, size: int, source: int) -> np.ndarray:
    """Rows (or columns) of a ``source``-long axis that a nearest resize to ``size`` reads
    (``asymmetric``/``floor``, as :mod:`fastnst.runtime.graph`)."""
    return (index * source) // size


@dataclass
class Norm:
    """One norm layer's whole-image affine (γ/σ and β − μγ/σ), as ``[1, C, 1, 1]``."""

    scale: np.ndarray
    shift: np.ndarray

    @classmethod
    def from_sums(
        cls, sums: np.ndarray, sumsq: np.ndarray, count: int, gamma: np.ndarray, beta: np.ndarray
    ) -> Norm:
        mean = sums / count
        var = np.maximum(sumsq / count - mean**2, 0)
        scale = gamma / np.sqrt(var + EPS)
        shift = beta - mean * scale
        return cls(
            scale.astype(np.float32)[None, :, None, None],
            shift.astype(np.float32)[None, :, None, None],
        )


Session = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class Streamer:
    """The network of ``weights`` run band by band; ``session(graph_bytes)`` makes a callable
    onnxruntime session (the caller's providers and threads)."""

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        layer_list: list[Layer],
        session: Callable[[bytes], Session],
    ) -> None:
        self.weights, self.layers, self.session = weights, layer_list, session
        self.cache: dict[tuple[tuple[Step, ...], bool], Session] = {}

    def channels(self, layer: Layer) -> int:
        return int(self.weights[f"{layer.name}.conv.bias"].shape[0])

    def runner(self, steps: list[Step], keep: bool) -> Session:
        key = (tuple(steps), keep)
        if key not in self.cache:
            self.cache[key] = self.session(band_graph(self.weights, steps, keep))
        return self.cache[key]

    def chain(
        self,
        source: np.ndarray,
        steps: list[Step],
        norms: list[Norm | None],
        keep: bool,
        band_bytes: int,
        resize_to: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
        """``steps`` over ``source`` ``[1, C, H, W]`` band by band (nearest-resized to
        ``resize_to`` first, if given). ``norms[j]`` is step *j*'s input affine when its
        ``act`` is ``relu``. Returns the last conv's output (with ``keep``), its per-channel
        sums and sums of squares (float64) and its pixel count."""
        run = self.runner(steps, keep)
        in_h, in_w = resize_to or source.shape[-2:]
        sizes = [(in_h, in_w)]
        for step in steps:
            sizes.append((conv_size(sizes[-1][0], step.layer), conv_size(sizes[-1][1], step.layer)))
        out_h, out_w = sizes[-1]
        widest = max(self.channels(s.layer) * w for s, (_, w) in zip(steps, sizes[1:], strict=True))
        rows = max(8, band_bytes // (max(widest, source.shape[1] * in_w) * 4))
        first = steps[0].layer
        pad = first.kernel // 2
        cols = reflect(np.arange(-pad, in_w + pad), in_w)
        if resize_to is not None:
            cols = source_index(cols, in_w, source.shape[-1])
        channels = self.channels(steps[-1].layer)
        out = np.empty((1, channels, out_h, out_w), np.float32) if keep else None
        total = np.zeros((2, channels), np.float64)
        fixed: dict[str, np.ndarray] = {}
        for j, norm in enumerate(norms):
            if norm is not None:
                fixed[f"scale{j}"], fixed[f"shift{j}"] = norm.scale, norm.shift
        for start in range(0, out_h, rows):
            stop = min(out_h, start + rows)
            feeds = dict(fixed)
            lo, hi = start, stop
            # Back through the chain: the rows each conv needs, padded at the image edges.
            for j in range(len(steps) - 1, 0, -1):
                layer, length = steps[j].layer, sizes[j][0]
                p = layer.kernel // 2
                need_lo, need_hi = lo * layer.stride - p, (hi - 1) * layer.stride - p + layer.kernel
                top, bottom = max(0, -need_lo), max(0, need_hi - length)
                feeds[f"pads{j}"] = np.array([0, 0, top, p, 0, 0, bottom, p], np.int64)
                lo, hi = max(0, need_lo), min(length, need_hi)
            band = reflect(
                np.arange(lo * first.stride - pad, (hi - 1) * first.stride - pad + first.kernel),
                in_h,
            )
            if resize_to is not None:
                band = source_index(band, in_h, source.shape[-2])
            feeds["x"] = np.take(np.take(source, band, axis=2), cols, axis=3)
            result = run(feeds)
            total += (result[0], result[1])
            if out is not None:
                out[:, :, start:stop] = result[2]
        return out, total[0], total[1], out_h * out_w

    def __call__(
        self, image: np.ndarray, tables: list[tuple[np.ndarray, np.ndarray]], band_bytes: int
    ) -> np.ndarray:
        """Stylize one ``[1, 3, H, W]`` image with per-layer ``(gamma, beta)`` ``[C]``, in
        bands whose largest tensor holds about ``band_bytes``."""
        layers_ = self.layers
        norms: list[Norm] = []

        def norm(k: int, sums: np.ndarray, sumsq: np.ndarray, count: int) -> Norm:
            found = Norm.from_sums(sums, sumsq, count, *tables[k])
            norms.append(found)
            return found

        enc0, enc1, enc2 = layers_[:3]
        _, *stats = self.chain(
            image, [Step(enc0, "none")], [None], keep=False, band_bytes=band_bytes
        )
        norm(0, *stats)
        half, *stats = self.chain(
            image,
            [Step(enc0, "none"), Step(enc1, "relu")],
            [None, norms[0]],
            keep=True,
            band_bytes=band_bytes,
        )
        norm(1, *stats)
        quarter, *stats = self.chain(
            half, [Step(enc2, "relu")], [norms[1]], keep=True, band_bytes=band_bytes
        )
        half_size = half.shape[-2:]
        del half
        n = norm(2, *stats)
        stream = quarter  # the residual stream, activated in place: relu(norm(conv))
        np.multiply(stream, n.scale, out=stream)
        stream += n.shift
        np.maximum(stream, 0, out=stream)
        residual = layers_[3:-3]
        for i in range(0, len(residual), 2):
            k = 3 + i
            first, *stats = self.chain(
                stream, [Step(residual[i], "none")], [None], keep=True, band_bytes=band_bytes
            )
            norm(k, *stats)
            second, *stats = self.chain(
                first, [Step(residual[i + 1], "relu")], [norms[k]], keep=True, band_bytes=band_bytes
            )
            del first
            n = norm(k + 1, *stats)
            np.multiply(second, n.scale, out=second)
            second += n.shift
            stream += second
            del second
        up1, up2, head = layers_[-3:]
        k = len(layers_) - 3
        upper, *stats = self.chain(
            stream,
            [Step(up1, "none")],
            [None],
            keep=True,
            band_bytes=band_bytes,
            resize_to=tuple(half_size),
        )
        del stream
        norm(k, *stats)
        full_size = image.shape[-2:]
        _, *stats = self.chain(
            upper,
            [Step(up2, "relu")],
            [norms[k]],
            keep=False,
            band_bytes=band_bytes,
            resize_to=full_size,
        )
        norm(k + 1, *stats)
        out, *stats = self.chain(
            upper,
            [Step(up2, "relu"), Step(head, "relu")],
            [norms[k], norms[k + 1]],
            keep=True,
            band_bytes=band_bytes,
            resize_to=full_size,
        )
        del upper
        n = norm(k + 2, *stats)
        np.multiply(out, n.scale, out=out)
        out += n.shift
        np.negative(out, out=out)  # the sigmoid in place, 1 / (1 + exp(-x)): no 100 MB copies
        with np.errstate(over="ignore"):  # exp(-x) = inf gives 0, as it should
            np.exp(out, out=out)
        out += 1
        return np.reciprocal(out, out=out)
