"""fastnst stylize on images and folders: styles, blends, strength, colour, sizes, tiling,
bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fastnst.export import load_model
from fastnst.infer import Stylizer, main, parse_style_spec
from fastnst.infer.stylize import RowsConv2d
from fastnst.infer.tiling import stylize_tiled
from fastnst.model import NetConfig, TransformerNet

from conftest import perturbed_model

REPO = Path(__file__).resolve().parents[1]
STYLES = ["miles", "gwen", "punk"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose norm tables are perturbed, so that styles really differ."""
    return perturbed_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", STYLES, 0.2)


def _photo(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Path:
    gen = np.random.default_rng(0)
    array = gen.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def _run(model: Path, *args: str) -> int:
    return main(["--model", str(model), "--device", "cpu", "--quiet", *args])


def test_single_image_keeps_size_and_style_matters(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png", (41, 29))
    outputs = []
    for style in ("miles", "2"):
        out = tmp_path / f"out_{style}.png"
        assert _run(model, "--input", str(photo), "--output", str(out), "--style", style) == 0
        assert Image.open(out).size == (41, 29)
        outputs.append(np.asarray(Image.open(out), dtype=np.int16))
    assert np.abs(outputs[0] - outputs[1]).mean() > 2


def test_folder_keeps_its_tree(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png")
    _photo(src / "sub" / "b.jpg", (33, 50))
    assert _run(model, "--input", str(src), "--output", str(tmp_path / "dst")) == 0
    assert Image.open(tmp_path / "dst" / "a.png").size == (40, 30)
    assert Image.open(tmp_path / "dst" / "sub" / "b.jpg").size == (33, 50)


def test_max_size_shrinks_the_long_side(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png", (80, 40))
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out), "--max-size", "40") == 0
    assert Image.open(out).size == (40, 20)


def test_blend_spec_is_normalised_and_one_hot_matches_index() -> None:
    ((_, weights),) = parse_style_spec("miles:0.7,gwen:0.3", STYLES)
    assert torch.allclose(weights, torch.tensor([0.7, 0.3, 0.0]))
    ((_, scaled),) = parse_style_spec("miles:7,gwen:3", STYLES)
    assert torch.allclose(scaled, weights)
    assert torch.equal(parse_style_spec("punk", STYLES)[0][1], torch.tensor([0.0, 0.0, 1.0]))
    assert [label for label, _ in parse_style_spec("all", STYLES)] == STYLES


def test_cpu_fast_path_matches_the_training_network(model: Path) -> None:
    """The fused norm's own statistics and the frozen trace give the exported network's
    output (the one ``load_model`` rebuilds, with PyTorch's instance norm)."""
    net, _ = load_model(model)
    stylizer = Stylizer.load(model, "cpu")
    assert stylizer.frozen is not None
    image = torch.rand(2, 3, 53, 71, generator=torch.Generator().manual_seed(4))
    weights = torch.tensor([0.6, 0.0, 0.4])
    with torch.no_grad():
        expected = net(image, weights)
    fast = stylizer(image, weights)
    assert (fast - expected).abs().max() < 1e-5


@pytest.mark.parametrize(("cin", "cout", "kernel"), [(8, 3, 9), (5, 2, 3), (4, 4, 1)])
def test_rows_conv_equals_the_convolution(cin: int, cout: int, kernel: int) -> None:
    conv = torch.nn.Conv2d(cin, cout, kernel)
    image = torch.randn(2, cin, 23 + kernel, 17 + kernel)
    with torch.no_grad():
        assert torch.allclose(RowsConv2d(conv)(image), conv(image), atol=1e-5)


def test_info_lists_styles_and_network_without_stylizing(model: Path, capsys) -> None:
    assert main(["--model", str(model), "--info"]) == 0
    out = capsys.readouterr().out
    assert "styles: 0=miles, 1=gwen, 2=punk" in out
    net, _ = load_model(model)
    parameters = sum(p.numel() for p in net.parameters())
    assert f"width 0.25, 1 residual blocks, {parameters:,} parameters" in out


def test_blend_lies_between_its_styles(model: Path) -> None:
    stylizer = Stylizer.load(model, "cpu")
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = stylizer(image, parse_style_spec("miles", STYLES)[0][1])
    second = stylizer(image, parse_style_spec("gwen", STYLES)[0][1])
    half = stylizer(image, parse_style_spec("miles:1,gwen:1", STYLES)[0][1])
    assert (half - first).abs().mean() < (second - first).abs().mean()
    assert (half - second).abs().mean() < (second - first).abs().mean()


def test_strength_zero_is_the_photo(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out), "--strength", "0") == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(photo)))


def test_preserve_color_keeps_the_photo_chroma(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png")
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    assert _run(model, "--input", str(photo), "--output", str(plain)) == 0
    assert _run(model, "--input", str(photo), "--output", str(kept), "--preserve-color") == 0

    def chroma_error(path: Path) -> float:
        out = np.asarray(Image.open(path).convert("YCbCr"), dtype=np.float64)[..., 1:]
        ref = np.asarray(Image.open(photo).convert("YCbCr"), dtype=np.float64)[..., 1:]
        return float(np.abs(out - ref).mean())

    assert chroma_error(kept) < 4.0 < chroma_error(plain)


def test_all_styles_as_files_and_as_sheet(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png")
    assert (
        _run(model, "--input", str(photo), "--output", str(tmp_path / "o.png"), "--style", "all")
        == 0
    )
    assert sorted(p.name for p in tmp_path.glob("o_*.png")) == [
        f"o_{s}.png" for s in sorted(STYLES)
    ]
    sheet = tmp_path / "sheet.png"
    args = ["--input", str(photo), "--output", str(sheet), "--style", "all", "--sheet"]
    assert _run(model, *args) == 0
    assert Image.open(sheet).width >= 4 * 40


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_unusual_image_modes_are_handled(model: Path, tmp_path: Path, mode: str) -> None:
    suffix = ".jpg" if mode == "CMYK" else ".png"
    photo = _photo(tmp_path / f"in{suffix}", mode="RGB")
    with Image.open(photo) as image:
        if mode == "I;16":
            wide = (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
            Image.fromarray(wide).save(photo)
        else:
            image.convert(mode).save(photo)
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out)) == 0
    assert Image.open(out).size == (40, 30)


def test_exif_rotation_is_applied(model: Path, tmp_path: Path) -> None:
    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    Image.new("RGB", (40, 30), "red").save(photo, exif=exif)
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out)) == 0
    assert Image.open(out).size == (30, 40)


def test_tiled_matches_whole_image_at_1024(model: Path) -> None:
    stylizer = Stylizer.load(model, "cpu")
    image = torch.rand(1, 3, 120, 1024, generator=torch.Generator().manual_seed(2))
    weights = torch.tensor([[0.5, 0.5, 0.0]])
    with torch.no_grad():
        whole = stylizer.net.decode(stylizer.net.encode(image, weights), weights)
        tiled = stylize_tiled(stylizer.net, image, weights, tile=384)
    assert (tiled - whole).abs().mean() < 1 / 255
    assert (tiled - whole).abs().max() < 1e-4


@pytest.mark.parametrize("antialias", [False, True])
def test_tiles_in_both_directions_with_the_default_network(antialias: bool) -> None:
    """The full five-block network, a photo cut into 3 x 3 tiles: same picture (with the
    anti-aliasing blurs too, which widen the halo)."""
    torch.manual_seed(3)
    net = TransformerNet(NetConfig(num_styles=2, antialias=antialias))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn_like(param))
    net.eval()
    image = torch.rand(1, 3, 150, 170, generator=torch.Generator().manual_seed(4))
    weights = torch.tensor([[0.3, 0.7]])
    with torch.no_grad():
        whole = net.decode(net.encode(image, weights), weights)
        tiled = stylize_tiled(net, image, weights, tile=64)
    assert (tiled - whole).abs().max() < 1e-4


def test_automatic_tiling_when_memory_is_short(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With little RAM the CLI tiles on its own (at AUTO_TILE), and the picture is the same."""
    import fastnst.infer.tiling as tiling
    import fastnst.infer.torch_backend as cli

    photo = _photo(tmp_path / "in.png", (150, 90))
    whole = tmp_path / "whole.png"
    torch_args = ("--input", str(photo), "--backend", "torch")
    assert _run(model, *torch_args, "--output", str(whole), "--tile", "0") == 0
    spans = []
    real = tiling.plan_spans
    monkeypatch.setattr(tiling, "plan_spans", lambda *a: spans.append(a) or real(*a))
    monkeypatch.setattr(cli, "total_ram_bytes", lambda: 1024)
    monkeypatch.setattr(cli, "AUTO_TILE", 64)
    auto = tmp_path / "auto.png"
    assert _run(model, *torch_args, "--output", str(auto)) == 0
    assert spans and {a[1] for a in spans} == {64}
    difference = np.abs(
        np.asarray(Image.open(whole), dtype=np.int16) - np.asarray(Image.open(auto), dtype=np.int16)
    )
    assert difference.max() <= 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu_is_close_to_fp32(
    model: Path, tmp_path: Path, precision: str, capsys: pytest.CaptureFixture
) -> None:
    photo = _photo(tmp_path / "in.png", (48, 40))
    full, reduced = tmp_path / "fp32.png", tmp_path / f"{precision}.png"
    assert _run(model, "--input", str(photo), "--output", str(full), "--precision", "fp32") == 0
    assert "warning" not in capsys.readouterr().err
    args = ["--input", str(photo), "--output", str(reduced), "--precision", precision]
    assert _run(model, *args) == 0
    # Slower than fp32 on a CPU: the user is told once, and the run still goes on.
    assert capsys.readouterr().err.count(f"warning: --precision {precision} on a CPU") == 1
    a = np.asarray(Image.open(full), dtype=np.int16)
    b = np.asarray(Image.open(reduced), dtype=np.int16)
    assert 0 < np.abs(a - b).mean() < 4  # the reduced path really ran, and stays close


def test_gpu_out_of_memory_is_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Stylizer, "__call__", exhausted)
    photo = _photo(tmp_path / "in.png")
    out = str(tmp_path / "out.png")
    assert _run(model, "--input", str(photo), "--output", out, "--backend", "torch") == 1
    assert capsys.readouterr().err == (
        "error: out of GPU memory; try --tile 512, a smaller --batch or --max-size\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_cli_tile_option_gives_the_same_picture(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png", (150, 90))
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert _run(model, "--input", str(photo), "--output", str(whole), "--tile", "0") == 0
    assert _run(model, "--input", str(photo), "--output", str(tiled), "--tile", "96") == 0
    difference = np.abs(
        np.asarray(Image.open(whole), dtype=np.int16)
        - np.asarray(Image.open(tiled), dtype=np.int16)
    )
    assert difference.max() <= 1


def _bad_images(tmp_path: Path) -> dict[str, Path]:
    good = _photo(tmp_path / "good.png", (64, 64))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello")
    return {"missing": tmp_path / "nope.png", "empty": empty, "truncated": truncated, "text": text}


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text"])
def test_bad_image_is_one_line_error(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    photo = _bad_images(tmp_path)[kind]
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


def _bad_models(tmp_path: Path, model: Path) -> dict[str, Path]:
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model.read_bytes()[:200])
    newer = tmp_path / "newer.safetensors"
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as handle:
        header = json.loads(handle.metadata()["fastnst"])
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    save_file(state, str(newer), metadata={"fastnst": json.dumps({**header, "format_version": 99})})
    return {"plain": plain, "truncated": truncated, "newer": newer}


@pytest.mark.parametrize("kind", ["plain", "truncated", "newer"])
def test_bad_model_is_one_line_error(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    photo = _photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert (
        _run(_bad_models(tmp_path, model)[kind], "--input", str(photo), "--output", str(out)) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("spec", ["bogus", "miles:-1", "miles:0,gwen:0", "7"])
def test_bad_style_spec_is_one_line_error(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, spec: str
) -> None:
    photo = _photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert _run(model, "--input", str(photo), "--output", str(out), "--style", spec) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


def test_folder_with_one_bad_file_still_does_the_rest(model: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _photo(src / "good.png")
    (src / "broken.png").write_text("not an image")
    assert _run(model, "--input", str(src), "--output", str(tmp_path / "dst")) == 1
    assert (tmp_path / "dst" / "good.png").is_file()
    assert not (tmp_path / "dst" / "broken.png").exists()


def test_inference_imports_no_training_stack(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png")
    argv = ["--model", str(model), "--input", str(photo), "--output", str(tmp_path / "o.png")]
    code = (
        "import sys; from fastnst.infer import main; "
        f"rc = main({argv!r} + ['--quiet']); "
        "heavy = [m for m in ('lightning', 'hydra', 'fiftyone', 'cv2') if m in sys.modules]; "
        "print(rc, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "0 []"


def test_fused_norm_matches_the_training_network(model: Path) -> None:
    from fastnst.export import load_model

    reference, _ = load_model(model)
    stylizer = Stylizer.load(model, "cpu")
    image = torch.rand(2, 3, 45, 38, generator=torch.Generator().manual_seed(5))
    weights = torch.tensor([[0.2, 0.3, 0.5]])
    with torch.no_grad():
        expected = reference(image, weights.expand(2, -1))
    assert (stylizer(image, weights) - expected).abs().max() < 1e-4
