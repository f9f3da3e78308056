"""Configs compose, and `run(cfg)` trains, exports, reloads and resumes (tiny CPU runs)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fastnst.export import load_model
from fastnst.losses import PerceptualLoss, content_loss
from fastnst.training.module import NonFiniteLossError
from fastnst.training.run import run

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "fastnst" / "conf"

TINY = [
    "trainer=cpu",
    "trainer.max_steps=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.image_size=32",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.num_val=1",
    "data.val_size=32",
    "model.net.width=0.25",
    "model.net.num_residual=1",
    "model.style_size=48",
    "model.optim.warmup_steps=1",
    "style.sets.universes=[miles,gwen]",
    "callbacks.checkpoint.every_n_train_steps=1",
    "callbacks.sample_grid.every_n_steps=1",
    "callbacks.throughput.every_n_steps=1",
]


def compose_cfg(tmp_path: Path, overrides: list[str]) -> DictConfig:
    """Compose like `python train.py …` would, with run folders under ``tmp_path``."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path)
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


REQUIRED = {
    "data.dir": "/photos",
    "data.name": "photos",
    "style.dir": "/styles",
    "init_from": "m.safetensors",
    "distill.teacher": "m.safetensors",
}


def _is_missing(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    # `leaf in node` is False for a "???" value, so look at the keys.
    keys = list(node.keys()) if isinstance(node, DictConfig) else []
    return leaf in keys and OmegaConf.is_missing(node, leaf)


@pytest.mark.parametrize(
    "group",
    [
        "data",
        "model",
        "loss",
        "style",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "experiment",
        "stage",
        "finetune",
    ],
)
def test_every_config_group_composes(tmp_path: Path, group: str) -> None:
    options = _options(group)
    assert options, f"conf/{group} is empty"
    for option in options:
        cfg = compose_cfg(tmp_path, [f"{group}={option}"])
        fill = [f"{k}={v}" for k, v in REQUIRED.items() if _is_missing(cfg, k)]
        cfg = compose_cfg(tmp_path, [f"{group}={option}", *fill]) if fill else cfg
        with open_dict(cfg):
            del cfg["hydra"]  # Hydra's own node needs a live job; interpolations into it still work
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        assert container["trainer"]["_target_"] == "lightning.Trainer"
        assert "_target_" in container["model"] and "_target_" in container["style"]["sets"]


def test_loss_style_stat_reaches_the_loss_module_and_the_export(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    for overrides, stat in (
        ([], "gram"),
        (["loss=covariance"], "covariance"),
        (["loss.style_stat=covariance"], "covariance"),
    ):
        cfg = compose_cfg(tmp_path, [*TINY, *overrides, "loss.vgg_weights=random"])
        module = instantiate(cfg.model)(
            loss=OmegaConf.to_container(cfg.loss, resolve=True),
            style_names=["a"],
            image_size=32,
        )
        assert module.loss_fn.style_stat == stat
        assert module.model_info().loss["style_stat"] == stat


def test_deep_content_adds_relu4_2_to_the_loss_and_its_parts(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from fastnst.optimize.gatys import load_loss_settings

    cfg = compose_cfg(tmp_path, [*TINY, "loss=deep_content", "loss.vgg_weights=random"])
    module = instantiate(cfg.model)(
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        style_names=["a"],
        image_size=32,
    )
    default = load_loss_settings()
    layers = module.loss_fn.content_layers
    assert layers["relu2_2"] == default["content_layers"]["relu2_2"]  # Johnson's term kept
    assert layers["relu4_2"] > 0 and "relu4_2" not in default["content_layers"]
    assert module.model_info().loss["content_layers"] == layers  # travels with the export
    assert load_loss_settings("deep_content")["content_layers"] == layers  # Gatys's reader agrees
    torch.manual_seed(0)
    photo = module.loss_fn.vgg(torch.rand(1, 3, 32, 32))
    _, parts = content_loss(module.loss_fn.vgg(torch.rand(1, 3, 32, 32)), photo, layers)
    assert parts["content/relu4_2"] > 0 and parts["content/relu2_2"] > 0
    _, same = content_loss(photo, photo, layers)
    assert same["content/relu4_2"] == 0  # the photo itself loses nothing at either depth


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[DictConfig, dict]:
    tmp_path = tmp_path_factory.mktemp("run")
    cfg = compose_cfg(tmp_path, TINY)
    return cfg, run(cfg)


def test_train_export_reload_gives_identical_outputs(trained: tuple[DictConfig, dict]) -> None:
    cfg, result = trained
    path = result["model_path"]
    assert path == Path(cfg.paths.output_dir) / "spiderverse.safetensors"
    loaded, info = load_model(path)
    assert info.style_names == ["miles", "gwen"] and info.steps == 2 and info.image_size == 32
    assert info.vgg_weights == "caffe" and info.loss["style_layers"]["relu3_1"] > 0
    net = result["module"].net.eval()
    x = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        for style in range(2):
            assert torch.equal(net(x, style), loaded(x, style))
    assert not torch.equal(loaded(x, 0), loaded(x, 1))


def test_export_of_the_real_checkpoint_matches_the_run(
    trained: tuple[DictConfig, dict], tmp_path: Path
) -> None:
    """fastnst export on a real training checkpoint gives the network the run exported."""
    from fastnst.cli import main

    cfg, result = trained
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    out = tmp_path / "from_ckpt.safetensors"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    exported, info = load_model(out)
    reference, reference_info = load_model(result["model_path"])
    assert info.style_names == reference_info.style_names and info.steps == 2
    x = torch.rand(1, 3, 33, 47)
    with torch.no_grad():
        for style in range(2):
            assert torch.equal(exported(x, style), reference(x, style))


def test_run_folder_has_samples_checkpoints_and_tensorboard(
    trained: tuple[DictConfig, dict],
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, _ = trained
    out = Path(cfg.paths.output_dir)
    assert (out / "samples" / "grid.jpg").is_file()
    assert sorted(p.name for p in (out / "samples").glob("photo0_*.jpg")) == [
        "photo0_gwen.jpg",
        "photo0_miles.jpg",
    ]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "loss/total",
        "loss/style/relu1_1",
        "loss/content/relu2_2",
        "loss/tv",
        "perf/images_per_sec",
    ):
        assert tag in scalars, tag
    assert any(tag.startswith("lr-") for tag in scalars)
    assert "samples" in events.Tags()["images"]


def test_resume_continues_at_the_right_step(
    trained: tuple[DictConfig, dict], tmp_path: Path
) -> None:
    cfg, _ = trained
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed_cfg = compose_cfg(tmp_path, [*TINY, "trainer.max_steps=4", f"ckpt_path={last}"])
    result = run(resumed_cfg)
    trainer = result["trainer"]
    assert trainer.global_step == 4
    optimizer = trainer.optimizers[0]
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {4}  # Adam moments continued from step 2, not restarted
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 4
    assert load_model(result["model_path"])[1].steps == 4


def test_non_finite_loss_stops_with_a_clear_message(tmp_path: Path, monkeypatch) -> None:
    # A NaN weight in the config is refused before training (test_bad_input); a loss that
    # turns NaN during training (overflow, a bad batch) must still stop with this message.
    original = PerceptualLoss.forward

    def nan_loss(self, *args):
        total, parts = original(self, *args)
        return total * float("nan"), parts

    monkeypatch.setattr(PerceptualLoss, "forward", nan_loss)
    cfg = compose_cfg(tmp_path, TINY)
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step 0"):
        run(cfg)


def test_cli_bad_input_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "style=folder",
            f"style.dir={tmp_path / 'none'}",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: style folder not found")
    assert "Traceback" not in proc.stderr


def test_log_ends_with_exported_model(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, [*TINY, "trainer.max_steps=1"])
    with caplog.at_level(logging.INFO, logger="fastnst"):
        result = run(cfg)
    assert caplog.records[-1].getMessage() == f"exported model: {result['model_path']}"


@pytest.mark.slow  # two processes, ~20 s: `make test-all` runs it
def test_ddp_on_cpu_with_two_processes(tmp_path: Path) -> None:
    overrides = [o for o in TINY if not o.startswith("trainer=")]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnst",
            "train",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            *overrides,
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "world_size=2" in proc.stdout + proc.stderr
        or "Initializing distributed: GLOBAL_RANK: 1" in proc.stdout + proc.stderr
    )
    assert (
        proc.stdout.strip().splitlines()[-1]
        == f"exported model: {tmp_path / 'spiderverse.safetensors'}"
    )
    assert load_model(tmp_path / "spiderverse.safetensors")[1].steps == 2


@pytest.mark.slow
def test_compiled_training_step_trains_and_exports_plain_keys(tmp_path: Path) -> None:
    """model.compile=true: the step runs through torch.compile (channels_last), the weights
    change, and the export holds the network's own keys (no compiled copy in the state)."""
    cfg = compose_cfg(tmp_path, [*TINY, "model.compile=true"])
    result = run(cfg)
    module = result["module"]
    assert module.channels_last and module.net_step is not module.net.forward
    loaded, _ = load_model(result["model_path"])
    assert set(loaded.state_dict()) == set(module.net.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(module.net.eval().float()(x, 1), loaded(x, 1), atol=1e-5)


def test_failed_checkpoint_write_keeps_the_previous_one(
    trained: tuple[DictConfig, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-save (simulated: torch.save writes part of the file, then fails):
    last.ckpt stays the previous, whole checkpoint, no temporary file is left beside it,
    and the failure is the one-line OSError every command reports."""
    import fastnst.files

    cfg, result = trained
    trainer = result["trainer"]
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    last = folder / "last.ckpt"
    before = last.read_bytes()

    def fill_the_disk(obj: object, target: object, *args: object, **kwargs: object) -> None:
        Path(target).write_bytes(before[:2000])  # type: ignore[arg-type]
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", fill_the_disk)
    monkeypatch.setattr(
        fastnst.files.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 0})()
    )
    with pytest.raises(OSError, match="no space left"):
        trainer.save_checkpoint(last)
    monkeypatch.undo()
    assert last.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2
