"""Stylize with onnxruntime: the model file's graph (:mod:`fastnst.runtime.graph`) on NumPy
arrays, with the same blends, strength, colour keeping, per-pixel region weights and
seamless tiling as the torch :class:`~fastnst.infer.stylize.Stylizer`."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from fastnst.errors import UserError
from fastnst.modelfile import (
    GUIDE_CHANNELS,
    ModelFileError,
    ModelInfo,
    keep_carried,
    read_model_file,
    still_weights,
)
from fastnst.runtime import tiles
from fastnst.runtime.arrays import (
    bolder_strokes,
    pad_to_min_side,
    preserve_color,
    resize_bilinear,
)
from fastnst.runtime.graph import EPS, build_graph, layers
from fastnst.runtime.stream import Streamer
from fastnst.runtime.styles import parse_style_spec

# Whole-image runs hold several activations of the first layer's width at full size; above
# this many bytes of one such activation the image goes in row bands (classics at 512x384:
# 25 MB, 377 MB peak whole, 221 MB in bands, 0.4 s slower on one thread; docs/BENCHMARKS.md).
TILE_ACTIVATION_BYTES = 16 * 2**20
# The automatic band size, as the side of an equivalent square tile: half the long side,
# within these bounds (small bands re-run more halo rows; big ones hold more memory).
AUTO_TILE = (256, 512)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None under another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Hand the heap's free pages back after a tile. glibc raises its mmap threshold after
    each large free (up to 32 MB), so tile activations then come from the heap, which
    fragments and keeps its pages: a 4K photo's run peaked at 2.0 GB (docs/BENCHMARKS.md)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def default_threads() -> int:
    """``FASTNST_NUM_THREADS`` if set (the project's CPU lock sets it), else the CPUs this
    process may run on: onnxruntime's own default counts every core of the machine."""
    if os.environ.get("FASTNST_NUM_THREADS"):
        return max(1, int(os.environ["FASTNST_NUM_THREADS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def graph_options(path: str | Path, net: dict) -> dict[str, str | bool]:
    """The header's decoder resize, conv padding and anti-aliasing, as :func:`build_graph`
    takes them; an unknown value is a bad model file, not a crash in onnxruntime."""
    options = {
        "upsample": net.get("upsample", "nearest"),
        "padding": net.get("padding", "reflect"),
        "antialias": net.get("antialias", False),
    }
    known = {
        "upsample": ("nearest", "bilinear"),
        "padding": ("reflect", "zero"),
        "antialias": (False, True),
    }
    for key, value in options.items():
        if value not in known[key]:
            raise ModelFileError(f"{path}: unknown {key} {value!r} in its header")
    return options


def pick_providers(device: str) -> list[str]:
    """``auto``: CUDA (TensorRT first) when this onnxruntime has it, else the CPU."""
    available = ort.get_available_providers()
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if not gpu:
            raise UserError(
                "--device cuda was asked for but this onnxruntime has no CUDA provider "
                "(pip install onnxruntime-gpu, or --backend torch)"
            )
        return [*gpu, "CPUExecutionProvider"]
    if device != "auto":
        raise UserError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return [*gpu, "CPUExecutionProvider"]


@dataclass
class OnnxStylizer:
    """A model file as onnxruntime sessions; images are float32 NumPy ``[N, 3, H, W]``."""

    info: ModelInfo
    weights: dict[str, np.ndarray]
    providers: list[str]
    threads: int
    session: ort.InferenceSession
    spin: bool = True
    _tiling: dict[int | None, ort.InferenceSession] = field(default_factory=dict)
    _streamer: Streamer | None = None
    guided_session: ort.InferenceSession | None = None
    guided_tables: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", threads: int = 0, spin: bool = True
    ) -> OnnxStylizer:
        """``spin=False`` parks idle worker threads instead of busy-waiting for the next
        operator: a server that shares the CPU (the app beside a browser) keeps that time."""
        info, stored = read_model_file(path)
        weights = {k: np.asarray(v, dtype=np.float32) for k, v in stored.items()}
        check_weights(path, info, weights)
        # Every path but a recurrent model's guided frames runs the still network.
        still, net = still_weights(weights, info.net)
        residual = info.net.get("num_residual")
        providers = pick_providers(device)
        threads = threads or default_threads()
        session = _session(
            build_graph(still, residual, **graph_options(path, net)), providers, threads, spin
        )
        stylizer = cls(info, still, providers, threads, session, spin=spin)
        if info.net.get("recurrent"):
            # The same graph with the guide's input channels: image and guide go in as one
            # [N, 3 + GUIDE_CHANNELS, H, W] input.
            graph = build_graph(weights, residual, **graph_options(path, net))
            stylizer.guided_session = _session(graph, providers, threads, spin)
            stylizer.guided_tables = {k: v for k, v in weights.items() if ".norm." in k}
        return stylizer

    @property
    def recurrent(self) -> bool:
        return self.guided_session is not None

    def guided(self, images: np.ndarray, weights: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """A recurrent model's raw output for ``images`` and their ``[N, GUIDE_CHANNELS, H,
        W]`` guide (:class:`~fastnst.infer.temporal_blend.Recurrence`)."""
        if self.guided_session is None:
            raise UserError("this model is not recurrent: it takes no guide")
        height, width = images.shape[-2:]
        both = np.concatenate([np.asarray(images, np.float32), np.asarray(guide, np.float32)], 1)
        feeds = self._feeds(pad_to_min_side(both), weights, guided=True)
        out = self.guided_session.run(None, feeds)[0][..., :height, :width]
        return keep_carried(out, np.asarray(guide, np.float32))

    def _feeds(
        self, batch: np.ndarray, weights: np.ndarray, guided: bool = False
    ) -> dict[str, np.ndarray]:
        """A whole-image graph's inputs: the (padded) batch and every norm layer's γ/β."""
        feeds = {"image": batch}
        for k, (gamma, beta) in enumerate(
            self.affine(weights, len(batch), batch.shape[-2:], guided)
        ):
            feeds[f"gamma{k}"], feeds[f"beta{k}"] = gamma, beta
        return feeds

    def finish(
        self, out: np.ndarray, photos: np.ndarray, strength: float, keep_color: bool
    ) -> np.ndarray:
        """The network's output as shown: the photo's colours kept, mixed with the photo (or
        its strokes made bolder, ``strength`` above 1)."""
        if keep_color:
            out = preserve_color(out, photos)
        if strength < 1.0:
            return photos + (out - photos) * np.float32(strength)
        return bolder_strokes(out, strength) if strength > 1.0 else out

    @property
    def style_names(self) -> list[str]:
        return list(self.info.style_names)

    @property
    def on_gpu(self) -> bool:
        return self.providers[0] != "CPUExecutionProvider"

    @property
    def engine(self) -> str:
        """Where it runs, in words: ``onnxruntime on CPU`` (or ``CUDA``, ``Tensorrt``)."""
        return f"onnxruntime on {self.providers[0].removesuffix('ExecutionProvider')}"

    @property
    def first_width(self) -> int:
        return self.weights["encoder.0.conv.bias"].shape[0]

    def styles(self, spec: str) -> list[tuple[str, np.ndarray]]:
        return parse_style_spec(spec, self.style_names)

    def auto_tile(self, shape: tuple[int, ...]) -> int:
        """Go in parts when one first-layer activation of the whole image would pass
        :data:`TILE_ACTIVATION_BYTES` (a 4K photo with ``classics``: 1 GB each)."""
        need = shape[-1] * shape[-2] * self.first_width * 4
        if need <= TILE_ACTIVATION_BYTES:
            return 0
        return min(max(max(shape[-2:]) // 2, AUTO_TILE[0]), AUTO_TILE[1])

    def _tables(self, guided: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each norm layer's γ/β tables: the still network's, or (``guided``) the recurrent
        network's, whose head has the gate's column too."""
        source = self.guided_tables if guided and self.guided_tables else self.weights
        layer_list = layers(self.info.net["num_residual"])
        return [
            (source[f"{ly.name}.norm.gamma"], source[f"{ly.name}.norm.beta"]) for ly in layer_list
        ]

    def affine(
        self, weights: np.ndarray, batch: int, size: tuple[int, int], guided: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per norm layer γ and β: ``[N, C, 1, 1]`` from ``[S]``/``[N, S]`` weights, or per
        pixel ``[N, C, H_k, W_k]`` from ``[N, S, H, W]`` maps resampled to each layer."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim == 1:
            weights = np.broadcast_to(weights, (batch, weights.shape[0]))
        if weights.ndim == 2:
            return [
                ((weights @ g)[:, :, None, None], (weights @ b)[:, :, None, None])
                for g, b in self._tables(guided)
            ]
        weights = np.broadcast_to(weights, (batch, *weights.shape[1:]))
        resampled: dict[tuple[int, int], np.ndarray] = {}
        out = []
        for (g, b), layer_size in zip(
            self._tables(guided), layer_sizes(size, self.info.net["num_residual"]), strict=True
        ):
            if layer_size not in resampled:
                resampled[layer_size] = resize_bilinear(weights, layer_size)
            w = resampled[layer_size]
            out.append((np.einsum("nshw,sc->nchw", w, g), np.einsum("nshw,sc->nchw", w, b)))
        return out

    def __call__(
        self,
        images: np.ndarray,
        weights: np.ndarray,
        strength: float = 1.0,
        keep_color: bool = False,
        tile: int = 0,
    ) -> np.ndarray:
        """Stylize float RGB ``images`` in [0, 1] (float32 ``[N, 3, H, W]``).

        ``weights`` is ``[S]`` (a style or a blend) or ``[1, S, H, W]`` per pixel (regions,
        run whole). ``tile`` > 0 runs larger images in parts with whole-image norm
        statistics: layer by layer in row bands about as big as a ``tile``-sided tile
        (:meth:`stylize_banded`), or for a bilinear decoder :meth:`stylize_tiled`."""
        photo = np.ascontiguousarray(images, dtype=np.float32)
        height, width = photo.shape[-2:]
        batch = pad_to_min_side(photo)
        if weights.ndim != 4 and tile > 0 and max(height, width) > tile:
            rows = np.broadcast_to(np.asarray(weights, np.float32), (len(batch), weights.shape[-1]))
            run = self.stylize_banded if self.streams else self.stylize_tiled
            parts = [run(batch[i : i + 1], rows[i : i + 1], tile) for i in range(len(batch))]
            out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        else:
            out = self.session.run(None, self._feeds(batch, weights))[0]
        return self.finish(out[..., :height, :width], photo, strength, keep_color)

    @property
    def streams(self) -> bool:
        """Whether big images go layer by layer (:mod:`fastnst.runtime.stream`: a nearest
        decoder, whose resize is a gather, and reflect padding, which the band graphs
        build; the band graphs have no anti-aliasing blur), not through the multi-pass tiler."""
        net = self.info.net
        nearest = net.get("upsample", "nearest") == "nearest"
        return nearest and net.get("padding", "reflect") == "reflect" and not net.get("antialias")

    def stylize_banded(self, image: np.ndarray, weights: np.ndarray, tile: int) -> np.ndarray:
        """One ``[1, 3, H, W]`` image layer by layer (:class:`~fastnst.runtime.stream.
        Streamer`), each band holding about what a ``tile``-sided first-layer tile would."""
        if self._streamer is None:

            def session(graph: bytes) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
                made = _session(graph, self.providers, self.threads, self.spin)

                def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
                    out = made.run(None, feeds)
                    return_freed_memory()
                    return out

                return run

            self._streamer = Streamer(self.weights, layers(self.info.net["num_residual"]), session)
        rows = np.asarray(weights, np.float32).reshape(-1)
        tables = [(rows @ g, rows @ b) for g, b in self._tables()]
        band_bytes = tile * tile * self.first_width * 4
        return self._streamer(image, tables, band_bytes)

    def _tiling_session(self, stop_at: int | None) -> ort.InferenceSession:
        if stop_at not in self._tiling:
            net = self.info.net
            options = graph_options("model", net)
            graph = build_graph(self.weights, net["num_residual"], True, stop_at, **options)
            self._tiling[stop_at] = _session(graph, self.providers, self.threads, self.spin)
        return self._tiling[stop_at]

    def stylize_tiled(self, image: np.ndarray, weights: np.ndarray, tile: int) -> np.ndarray:
        """One ``[1, 3, H, W]`` image tile by tile, matching a whole-image run (the scheme of
        :mod:`fastnst.infer.tiling`): pass *k* runs each tile up to norm *k* with the
        statistics found so far and sums its core; a last pass blends feathered tiles."""
        height, width = image.shape[-2:]
        margin = tiles.halo(self.info.net["num_residual"], bool(self.info.net.get("antialias")))
        plan = [
            (rows, cols)
            for rows in tiles.plan_spans(height, tile, margin)
            for cols in tiles.plan_spans(width, tile, margin)
        ]
        affine = self.affine(weights, 1, (1, 1))
        fixed: dict[str, np.ndarray] = {}
        for k, (gamma, beta) in enumerate(affine):
            sums = np.zeros((2, gamma.shape[1]), np.float64)
            count = 0
            session = self._tiling_session(k)
            for rows, cols in plan:
                crop = image[:, :, rows.crop[0] : rows.crop[1], cols.crop[0] : cols.crop[1]]
                probe = session.run(None, {"image": crop, **fixed})[0]
                return_freed_memory()
                core = probe[
                    0,
                    :,
                    tiles.core_slice(rows, probe.shape[-2], height),
                    tiles.core_slice(cols, probe.shape[-1], width),
                ].astype(np.float64)
                sums += (core.sum(axis=(1, 2)), np.square(core).sum(axis=(1, 2)))
                count += core.shape[-2] * core.shape[-1]
            mean = sums[0] / count
            var = np.maximum(sums[1] / count - mean**2, 0)
            scale = gamma[0, :, 0, 0] / np.sqrt(var + EPS)
            shift = beta[0, :, 0, 0] - mean * scale
            fixed[f"scale{k}"] = scale.astype(np.float32)[None, :, None, None]
            fixed[f"shift{k}"] = shift.astype(np.float32)[None, :, None, None]
        total = np.zeros((1, 3, height, width), np.float32)
        weight_sum = np.zeros((1, 1, height, width), np.float32)
        session = self._tiling_session(None)
        for rows, cols in plan:
            (y0, y1), (x0, x1) = rows.crop, cols.crop
            out = session.run(None, {"image": image[:, :, y0:y1, x0:x1], **fixed})[0]
            return_freed_memory()
            feather = np.outer(
                tiles.feather_weights(rows, height), tiles.feather_weights(cols, width)
            ).astype(np.float32)
            out *= feather
            total[:, :, y0:y1, x0:x1] += out
            weight_sum[:, :, y0:y1, x0:x1] += feather
        return np.divide(total, weight_sum, out=total)


def check_weights(path: str | Path, info: ModelInfo, weights: dict[str, np.ndarray]) -> None:
    """Refuse a file whose weights do not fit the network its header describes (the block
    count was checked by :func:`~fastnst.modelfile.read_model_file`, so listing the
    expected shapes is bounded by the file's own tensors)."""
    expected = expected_shapes(info.net)
    found = {key: value.shape for key, value in weights.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise ModelFileError(
            f"{path}: weights do not match the architecture (e.g. {wrong[0]}: "
            f"{found.get(wrong[0])} in the file, {expected.get(wrong[0])} expected)"
        )


def expected_shapes(net: dict) -> dict[str, tuple[int, ...]]:
    """Every weight's shape for the header's ``net`` (as :class:`fastnst.model.NetConfig`
    sizes the network: channels ``max(4, round(c * width))`` for 32/64/128)."""
    try:
        styles, width, residual = (
            int(net["num_styles"]),
            float(net.get("width", 1.0)),
            int(net.get("num_residual", 5)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"damaged network description ({exc})") from None
    c1, c2, c3 = (max(4, round(c * width)) for c in (32, 64, 128))
    ins_outs = [
        (3 + (GUIDE_CHANNELS if net.get("recurrent") else 0), c1),
        (c1, c2),
        (c2, c3),
        *[(c3, c3)] * (2 * residual),
        (c3, c2),
        (c2, c1),
        (
            c1 + (GUIDE_CHANNELS if net.get("guide_head") else 0),
            3 + (1 if net.get("recurrent") else 0),
        ),
    ]
    shapes = {}
    for layer, (cin, cout) in zip(layers(residual), ins_outs, strict=True):
        shapes[f"{layer.name}.conv.weight"] = (cout, cin, layer.kernel, layer.kernel)
        shapes[f"{layer.name}.conv.bias"] = (cout,)
        shapes[f"{layer.name}.norm.gamma"] = (styles, cout)
        shapes[f"{layer.name}.norm.beta"] = (styles, cout)
    return shapes


def layer_sizes(size: tuple[int, int], num_residual: int) -> list[tuple[int, int]]:
    """The spatial size at each norm layer for an input of ``size`` (stride-2 convs round
    up; the decoder returns to each encoder stage's size)."""
    full = (int(size[0]), int(size[1]))
    half = (-(-full[0] // 2), -(-full[1] // 2))
    quarter = (-(-half[0] // 2), -(-half[1] // 2))
    return [full, half, quarter, *[quarter] * (2 * num_residual), half, full, full]


def _session(
    model: onnx.ModelProto | bytes, providers: list[str], threads: int, spin: bool = True
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: tiles of varying size would keep the largest allocations forever.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    graph = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(graph, options, providers=providers)
