"""``run(cfg)``: everything ``python train.py`` does, callable from tests with a composed config."""

from __future__ import annotations

import logging
import math
import shlex
import sys
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.trainer.states import TrainerStatus
from omegaconf import DictConfig, OmegaConf

from fastnst.devices import describe_machine, training_precision
from fastnst.errors import UserError
from fastnst.export import load_model, save_model
from fastnst.modelfile import FIRST_CONV, GUIDE_CHANNELS, HEAD_CONV
from fastnst.training.callbacks import AtomicCheckpointIO, CheckpointOnInterrupt, write_samples
from fastnst.training.module import StyleTransferModule
from fastnst.training.temporal import GATE_START

log = logging.getLogger("fastnst")
# The `lightning` package gives its logger a console handler of its own on import; the run's
# logging (Hydra's job_logging) already prints every record, so without this each line shows twice.
logging.getLogger("lightning").handlers.clear()
# The VGG loss network stays in eval mode by design; Lightning warns about it at every fit.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

# Errors whose message is the whole story for the user: no traceback. OSError: a full or
# read-only disk under the run folder.
USER_ERRORS = (UserError, OSError)


def user_error(exc: BaseException) -> BaseException | None:
    """The user-facing cause of ``exc`` (unwrapping Hydra's instantiation wrapper), if any."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return UserError("out of GPU memory: lower data.batch_size or data.image_size")
    return exc if isinstance(exc, USER_ERRORS) else None


def check_config(cfg: DictConfig) -> None:
    """Every mandatory value (``???``: ``data.dir`` of ``data=folder``, the teacher of
    ``stage=distill``) is given, and no number is NaN or infinite: NaN passes every
    ``x < 0`` check (and training with a NaN learning rate runs to NaN weights)."""

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, f"{key}.{name}" if key else str(name))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{key}[{index}]")
        elif node == "???":
            raise UserError(f"{key} is required: give {key}=... on the command line")
        elif isinstance(node, float) and not math.isfinite(node):
            raise UserError(f"{key} must be a finite number, got {node}")

    config = OmegaConf.to_container(cfg, resolve=False)
    walk({k: v for k, v in config.items() if k != "hydra"}, "")  # type: ignore[union-attr]


def check_checkpoint(path: str | Path) -> None:
    """``ckpt_path`` is a whole checkpoint (a zip archive whose every member reads back with
    its checksum), so a truncated one gets one line instead of torch's traceback."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ckpt_path: no such checkpoint: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"ckpt_path: {path} is truncated or not a checkpoint ({exc})") from None
    if damaged is not None:
        raise UserError(f"ckpt_path: {path} is damaged ({damaged} fails its checksum)")


def resolve_precision(trainer_cfg: DictConfig) -> str | int:
    """``precision: auto`` means bf16 autocast where the hardware has it (GPU or CPU)."""
    precision = trainer_cfg.get("precision", "auto")
    if precision != "auto":
        return precision
    return training_precision(str(trainer_cfg.get("accelerator", "auto")))


def start_from_model(
    module: StyleTransferModule, path: str, gate_start: float = GATE_START
) -> None:
    """Fine-tune an exported (or bundled) model: same architecture, its weights as the start.

    The config's styles need not be the model's: a style the model has keeps its γ/β rows,
    a new one starts from the mean of the model's rows (Dumoulin et al. 2017's starting
    point for new styles), so ``finetune=cin`` adds styles to a trained network."""
    net, info = load_model(path)
    if (
        net.config.width != module.net.config.width
        or (net.config.num_residual != module.net.config.num_residual)
        or (net.config.recurrent and not module.net.config.recurrent)
        or (net.config.guide_head and not module.net.config.guide_head)
    ):
        raise UserError(f"init_from model is {net.config}, the config asks for {module.net.config}")
    known = info.style_names
    rows = [known.index(name) if name in known else None for name in module.style_names]
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith((".gamma", ".beta")):
            mean = value.mean(dim=0)
            value = torch.stack([value[r] if r is not None else mean for r in rows])
        state[key] = value
    if module.net.config.recurrent and not net.config.recurrent:
        # A plain model becomes a recurrent one that starts as exactly the plain model:
        # the guide's input channels start at zero weight.
        first = state[FIRST_CONV]
        guide = first.new_zeros(first.shape[0], GUIDE_CHANNELS, *first.shape[2:])
        state[FIRST_CONV] = torch.cat([first, guide], dim=1)
        state.update(closed_gate(state, gate_start))
        log.info(
            "recurrent network: guide weights start at zero, its gate at %.0f %% where trusted",
            100 / (1 + math.exp(-gate_start)),
        )
    if module.net.config.guide_head and not net.config.guide_head:
        # The head's view of the guide starts at zero weight too: the same network.
        head = state[HEAD_CONV]
        guide = head.new_zeros(head.shape[0], GUIDE_CHANNELS, *head.shape[2:])
        state[HEAD_CONV] = torch.cat([head, guide], dim=1)
        log.info("the head sees the guide too (guide_head): its weights start at zero")
    module.net.load_state_dict(state)
    changed = loss_changes(info.loss, dict(module.hparams.loss))
    if changed:  # often meant (a recipe of its own), but easy to do by accident (docs/VIDEO.md)
        log.info(
            "loss settings changed from those %s was trained with: %s", path, "; ".join(changed)
        )
    kept = [n for n, r in zip(module.style_names, rows, strict=True) if r is not None]
    new = [n for n, r in zip(module.style_names, rows, strict=True) if r is None]
    log.info("starting from the weights of %s", path)
    if kept:
        log.info("styles kept from it: %s", ", ".join(kept))
    if new:
        log.info(
            "new styles, starting from the mean of its %d styles: %s",
            len(info.style_names),
            ", ".join(new),
        )


# The loss settings that decide what a model looks like; a fine-tune that changes one moves
# the model away from its look (a temporal fine-tune without the model's own content layers
# drifted back to the look they had fixed, docs/VIDEO.md).
LOOK_SETTINGS = (
    "content_layers",
    "style_layers",
    "content_weight",
    "style_weight",
    "tv_weight",
    "relax_warps",
)


def loss_changes(trained: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"key: trained -> now"`` for each look-deciding loss setting that differs (settings a
    model file does not record are not compared)."""
    return [
        f"{key}: {trained[key]} -> {now.get(key)}"
        for key in LOOK_SETTINGS
        if key in trained and trained[key] != now.get(key)
    ]


# The gate of a recurrent network started from a plain one: its logit ``model.temporal.gate_start``
# (by default sigmoid(-2) = 0.12 of the carried output kept), varying a little with the image
# (γ 0.5 on a normalised copy of the mean RGB row), so gradients flow to every gate weight.
GATE_START_SCALE = 0.5


def closed_gate(
    state: dict[str, torch.Tensor], shift: float = GATE_START
) -> dict[str, torch.Tensor]:
    """The head's weights with the gate channel appended (:mod:`fastnst.model`)."""
    weight, bias = state["head.conv.weight"], state["head.conv.bias"]
    gamma, beta = state["head.norm.gamma"], state["head.norm.beta"]
    return {
        "head.conv.weight": torch.cat([weight, weight.mean(0, keepdim=True)]),
        "head.conv.bias": torch.cat([bias, bias.mean(0, keepdim=True)]),
        "head.norm.gamma": torch.cat([gamma, torch.full_like(gamma[:, :1], GATE_START_SCALE)], 1),
        "head.norm.beta": torch.cat([beta, torch.full_like(beta[:, :1], shift)], 1),
    }


def build(cfg: DictConfig) -> tuple[StyleTransferModule, L.LightningDataModule, L.Trainer]:
    """Instantiate styles, data, module, callbacks, logger and trainer from the config."""
    styles = instantiate(cfg.style.sets)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model)(
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        style_names=[style.name for style in styles],
        styles=styles,
        image_size=cfg.data.image_size,
    )
    if cfg.get("init_from"):
        temporal = getattr(module, "temporal", None)  # only the temporal stage has settings
        start_from_model(module, cfg.init_from, temporal.gate_start if temporal else GATE_START)
    elif module.hparams.trainable != "all":
        raise UserError("finetune=cin trains only the style tables: give init_from=MODEL too")
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        precision=resolve_precision(cfg.trainer),
        plugins=[AtomicCheckpointIO()],
    )
    return module, datamodule, trainer


class TrainingInterrupted(UserError):
    """SIGTERM or Ctrl-C stopped training; ``exit_code`` is 143 or 130 as for the signal."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def interrupted(trainer: L.Trainer) -> TrainingInterrupted:
    """The error for a killed run, saying where its last checkpoint is and how to resume."""
    saved = next((c.saved for c in trainer.callbacks if isinstance(c, CheckpointOnInterrupt)), None)
    where = f"resume with ckpt_path={saved}" if saved else "no checkpoint was written"
    signal_name, code = ("SIGTERM", 143) if trainer.received_sigterm else ("Ctrl-C", 130)
    return TrainingInterrupted(
        f"interrupted ({signal_name}) at step {trainer.global_step}; {where}", code
    )


def provenance(cfg: DictConfig, steps: int) -> dict[str, Any]:
    """How a model was made, stored in its file: enough to reproduce or judge it."""
    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:
        overrides = sys.argv[1:]
    return {
        "command": " ".join(["fastnst train", *map(shlex.quote, overrides)]),
        "steps": steps,
        "content": str(cfg.data.get("dir") or cfg.data.get("name") or "embedded photos"),
        "image_size": int(cfg.data.image_size),
        "init_from": str(cfg.get("init_from") or ""),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": describe_machine(),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, then (on rank zero) export the model and write sample stylizations."""
    check_config(cfg)
    if cfg.get("ckpt_path"):
        check_checkpoint(cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule, trainer = build(cfg)
    log.info("styles: %s", ", ".join(module.style_names))
    for style in module.styles:
        log.info("style %s: %s", style.name, style.describe())
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except (SystemExit, KeyboardInterrupt):
        # Lightning turns SIGTERM into SystemExit(0) and Ctrl-C into sys.exit(1).
        if trainer.state.status != TrainerStatus.INTERRUPTED:
            raise
        raise interrupted(trainer) from None
    result: dict[str, Any] = {"trainer": trainer, "module": module}
    if module.skipped_files:
        log.warning("skipped %d unreadable content image(s) during training", module.skipped_files)
    if not trainer.is_global_zero:
        return result
    output_dir = Path(cfg.paths.output_dir)
    samples = write_samples(module, datamodule.val_images, output_dir / "samples")
    log.info("sample stylizations: %s", samples[-1].parent)
    if cfg.get("export", True):
        info = module.model_info()
        info.extra["provenance"] = provenance(cfg, int(module.global_step))
        path = save_model(module.net, output_dir / cfg.export_name, info)
        result["model_path"] = path
        log.info("exported model: %s", path)
    return result
