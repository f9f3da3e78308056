"""``run(cfg)``: everything ``python train.py`` does, callable from tests with a composed config."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fastnst.errors import UserError
from fastnst.export import load_model, save_model
from fastnst.training.callbacks import write_samples
from fastnst.training.module import StyleTransferModule

log = logging.getLogger("fastnst")
# The `lightning` package gives its logger a console handler of its own on import; the run's
# logging (Hydra's job_logging) already prints every record, so without this each line shows twice.
logging.getLogger("lightning").handlers.clear()
# The VGG loss network stays in eval mode by design; Lightning warns about it at every fit.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

# Errors whose message is the whole story for the user: no traceback.
USER_ERRORS = (UserError, FileNotFoundError)


def user_error(exc: BaseException) -> BaseException | None:
    """The user-facing cause of ``exc`` (unwrapping Hydra's instantiation wrapper), if any."""
    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc if isinstance(exc, USER_ERRORS) else None


def resolve_precision(trainer_cfg: DictConfig) -> str | int:
    """``precision: auto`` means bf16 autocast on a GPU that has it, full fp32 otherwise."""
    precision = trainer_cfg.get("precision", "auto")
    if precision != "auto":
        return precision
    accelerator = trainer_cfg.get("accelerator", "auto")
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def start_from_model(module: StyleTransferModule, path: str) -> None:
    """Fine-tune an exported model: same architecture and styles, its weights as the start."""
    net, info = load_model(path)
    if info.style_names != module.style_names:
        raise UserError(
            f"init_from model has styles {info.style_names}, the config has {module.style_names}"
        )
    if net.config != module.net.config:
        raise UserError(f"init_from model is {net.config}, the config asks for {module.net.config}")
    module.net.load_state_dict(net.state_dict())
    log.info("starting from the weights of %s", path)


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
        start_from_model(module, cfg.init_from)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=logger, precision=resolve_precision(cfg.trainer)
    )
    return module, datamodule, trainer


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, then (on rank zero) export the model and write sample stylizations."""
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule, trainer = build(cfg)
    log.info("styles: %s", ", ".join(module.style_names))
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    result: dict[str, Any] = {"trainer": trainer, "module": module}
    if module.skipped_files:
        log.warning("skipped %d unreadable content image(s) during training", module.skipped_files)
    if not trainer.is_global_zero:
        return result
    output_dir = Path(cfg.paths.output_dir)
    samples = write_samples(module, datamodule.val_images, output_dir / "samples")
    log.info("sample stylizations: %s", samples[-1].parent)
    if cfg.get("export", True):
        path = save_model(module.net, output_dir / cfg.export_name, module.model_info())
        result["model_path"] = path
        log.info("exported model: %s", path)
    return result
