"""CPU bf16 training, CIN-only fine-tuning to new styles, distillation, and what a model
records about where its styles came from (tiny CPU runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import TINY, compose_cfg

from fastnst import devices
from fastnst.errors import UserError
from fastnst.export import load_model
from fastnst.infer.cli import describe_model
from fastnst.losses import gram_matrix
from fastnst.training.run import build, run

CIN_KEYS = (".gamma", ".beta")


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_precision_auto_on_cpu_follows_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.training_precision("cpu") == expected
    assert devices.training_precision("auto") == expected


def test_gram_stays_fp32_under_cpu_bf16_autocast() -> None:
    features = torch.rand(2, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, gram_matrix(features), rtol=1e-2)


def test_bf16_cpu_run_trains_and_exports_fp32(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, [*TINY, "trainer.precision=bf16-mixed", "trainer.max_steps=3"])
    result = run(cfg)
    assert result["trainer"].precision == "bf16-mixed"
    losses = result["trainer"].logged_metrics
    assert torch.isfinite(losses["loss/total"])
    net, _ = load_model(result["model_path"])
    assert all(p.dtype == torch.float32 for p in net.parameters())


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-style model (miles, gwen) to fine-tune from."""
    tmp_path = tmp_path_factory.mktemp("base")
    return run(compose_cfg(tmp_path, TINY))["model_path"]


def test_new_style_starts_from_mean_rows_and_known_style_keeps_its_own(
    base_model: Path, tmp_path: Path
) -> None:
    overrides = [*TINY, f"init_from={base_model}", "style.sets.universes=[gwen,punk]"]
    module, _, _ = build(compose_cfg(tmp_path, overrides))
    base, _ = load_model(base_model)
    start = module.net.state_dict()
    for key, table in base.state_dict().items():
        if key.endswith(CIN_KEYS):
            assert torch.equal(start[key][0], table[1])  # gwen: its own row
            assert torch.allclose(start[key][1], table.mean(dim=0))  # punk: the mean
        else:
            assert torch.equal(start[key], table)


def test_finetune_cin_changes_only_the_style_tables(base_model: Path, tmp_path: Path) -> None:
    overrides = [
        *TINY,
        f"init_from={base_model}",
        "finetune=cin",
        "style.sets.universes=[gwen,punk]",
        "trainer.max_steps=3",
    ]
    result = run(compose_cfg(tmp_path, overrides))
    base, _ = load_model(base_model)
    tuned, info = load_model(result["model_path"])
    assert info.style_names == ["gwen", "punk"]
    before, after = base.state_dict(), tuned.state_dict()
    tables = [key for key in after if key.endswith(CIN_KEYS)]
    convs = [key for key in after if not key.endswith(CIN_KEYS)]
    assert tables and convs
    for key in convs:
        assert torch.equal(after[key], before[key]), key  # bit-identical
    moved = [key for key in tables if not torch.allclose(after[key][0], before[key][1])]
    assert len(moved) == len(tables)  # every gwen row learned
    optimizer = result["trainer"].optimizers[0]
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = {n for n, p in result["module"].net.named_parameters() if id(p) in trained}
    assert names and all(n.endswith(CIN_KEYS) for n in names)


def test_finetune_cin_without_a_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="init_from"):
        build(compose_cfg(tmp_path, [*TINY, "finetune=cin"]))


def test_init_from_a_different_architecture_is_refused(base_model: Path, tmp_path: Path) -> None:
    overrides = [*TINY, f"init_from={base_model}", "model.net.num_residual=2"]
    with pytest.raises(UserError, match="init_from model is"):
        build(compose_cfg(tmp_path, overrides))


def test_procedural_stand_in_is_recorded_and_shown(base_model: Path) -> None:
    _, info = load_model(base_model)
    sources = info.extra["style_sources"]
    assert set(sources) == {"miles", "gwen"}
    assert all(text.startswith("procedural stand-in") for text in sources.values())
    provenance = info.extra["provenance"]
    assert provenance["steps"] == 2 and provenance["command"].startswith("fastnst train")
    assert "style miles: procedural stand-in" in describe_model(str(base_model))


def test_init_from_the_same_styles_copies_every_weight(base_model: Path, tmp_path: Path) -> None:
    module, _, _ = build(compose_cfg(tmp_path, [*TINY, f"init_from={base_model}"]))
    base, _ = load_model(base_model)
    for key, value in base.state_dict().items():
        assert torch.equal(module.net.state_dict()[key], value)


def test_distill_student_learns_the_teacher_without_vgg(base_model: Path, tmp_path: Path) -> None:
    overrides = [
        *TINY,
        "stage=distill",
        f"distill.teacher={base_model}",
        "model.net.width=0.125",
        "model.optim.lr=0.05",
        "trainer.max_steps=25",
    ]
    cfg = compose_cfg(tmp_path, overrides)
    torch.manual_seed(cfg.seed)  # as run() seeds: the same untrained student
    module, datamodule, _ = build(cfg)
    teacher, teacher_info = load_model(base_model)
    photos = datamodule.val_images
    with torch.no_grad():
        target = teacher(photos, 1)
        before = (module.net.eval()(photos, 1) - target).abs().mean()
    result = run(cfg)
    student, info = load_model(result["model_path"])
    with torch.no_grad():
        after = (student(photos, 1) - target).abs().mean()
    assert after < 0.85 * before, (before, after)
    assert info.net["width"] == 0.125 and info.extra["distilled_from"] == str(base_model)
    assert info.loss == teacher_info.loss
    assert info.extra["style_sources"] == teacher_info.extra["style_sources"]
    assert not any(key.startswith("teacher") for key in result["module"].state_dict())


def test_distill_refuses_a_teacher_with_other_styles(base_model: Path, tmp_path: Path) -> None:
    overrides = [
        *TINY,
        "stage=distill",
        f"distill.teacher={base_model}",
        "style.sets.universes=[gwen,punk]",
    ]
    with pytest.raises(UserError, match="teacher's styles"):
        build(compose_cfg(tmp_path, overrides))


def test_gpu_out_of_memory_in_training_is_a_user_error() -> None:
    from fastnst.training.run import user_error

    cause = user_error(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert isinstance(cause, UserError) and "lower data.batch_size" in str(cause)
    assert user_error(RuntimeError("a bug")) is None
