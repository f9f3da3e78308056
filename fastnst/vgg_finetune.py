"""Fine-tune VGG-19 as a classifier of a style tree's styles, for use as the loss network.

Seed project 001's idea ("transfer learning combined with style transfer"): VGG learned its
features on ImageNet photos; taught to tell the styles apart (the five Spider-Verse
universes, or any ``style=folder`` tree), its upper layers respond to what distinguishes
them, and a style loss read from those layers may weigh those traits more.

A small head (global average pool of one tap, then a linear layer) sits on the VGG-19
features. Only the convolutions from ``train_from`` up to the head's tap are trained, at a
low learning rate (the head at a higher one); everything below stays bit-identical, so the
shallow taps of the loss (colour, fine grain) keep their ImageNet meaning.

No frame of the held-out split is ever trained on: a style with several images keeps some
of them out whole; a style of one image (a painting) keeps a vertical strip on its right
out, and training crops never reach into it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fastnst.data.styles import StyleSet
from fastnst.errors import UserError
from fastnst.files import atomic_write
from fastnst.images import resize_long_side
from fastnst.vgg import LAYER_NAMES, PREPROCESS_KEY, TAP_NAMES, VGGFeatures


def _short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[3, H, W]`` so that its short side is ``size``."""
    h, w = image.shape[-2:]
    return resize_long_side(image, round(max(h, w) * size / min(h, w)))


def _grid_crops(region: torch.Tensor, crop: int, count: int) -> list[torch.Tensor]:
    """``count`` crops spread evenly over ``region`` (rows and columns of positions)."""
    h, w = region.shape[-2:]
    rows = max(1, math.ceil(math.sqrt(count * h / max(w, 1))))
    cols = max(1, math.ceil(count / rows))
    crops = []
    for i in range(rows):
        for j in range(cols):
            y = round(i * (h - crop) / max(rows - 1, 1))
            x = round(j * (w - crop) / max(cols - 1, 1))
            crops.append(region[:, y : y + crop, x : x + crop])
    return crops[:count]


@dataclass
class StyleSplit:
    """One style's training regions (crops are drawn from these only) and its held-out
    crops (fixed), with how the split was made."""

    name: str
    train: list[torch.Tensor] = field(default_factory=list)
    heldout: list[torch.Tensor] = field(default_factory=list)
    how: str = ""


def split_style(
    style: StyleSet, crop: int, holdout: float, eval_crops: int, short_side: int
) -> StyleSplit:
    """Hold out whole images when the style has several, else a right-hand strip of width
    ``max(holdout · W, crop)``; images are scaled to a short side of ``short_side``."""
    images = [_short_side(image, short_side) for image in style.load(0)]
    split = StyleSplit(style.name)
    if len(images) >= 2:
        held = max(1, round(holdout * len(images)))
        step = len(images) / held
        held_indices = {int(k * step) for k in range(held)}
        split.train = [im for i, im in enumerate(images) if i not in held_indices]
        regions = [im for i, im in enumerate(images) if i in held_indices]
        split.how = f"{len(regions)} of {len(images)} images held out"
    else:
        image = images[0]
        width = image.shape[-1]
        strip = max(crop, round(holdout * width))
        if width - strip < crop:
            raise UserError(f"style {style.name}: too narrow to hold out a strip of {strip} px")
        split.train = [image[..., : width - strip]]
        regions = [image[..., width - strip :]]
        split.how = f"right {strip} of {width} px held out"
    per_region = max(1, math.ceil(eval_crops / len(regions)))
    split.heldout = [c for r in regions for c in _grid_crops(r, crop, per_region)][:eval_crops]
    return split


def random_crop(region: torch.Tensor, crop: int, rng: random.Random) -> torch.Tensor:
    """A random ``crop``² window of ``region``, mirrored half of the time."""
    h, w = region.shape[-2:]
    y, x = rng.randint(0, h - crop), rng.randint(0, w - crop)
    window = region[:, y : y + crop, x : x + crop]
    return window.flip(-1) if rng.random() < 0.5 else window


class VGGClassifier(nn.Module):
    """VGG-19 features (all 16 convolutions, kept for the weight file) with a linear head
    on the normalised global average of ``head_layer``; the convolutions from ``train_from``
    up to that tap are trainable, all others stay frozen buffers."""

    def __init__(
        self,
        num_classes: int,
        weights: str = "caffe",
        head_layer: str = "relu5_1",
        train_from: str = "conv4_1",
    ) -> None:
        super().__init__()
        if head_layer not in TAP_NAMES:
            names = ", ".join(TAP_NAMES)
            raise UserError(f"unknown head layer {head_layer!r}; choose from {names}")
        convs = [n for n in LAYER_NAMES if n.startswith("conv")]
        if train_from not in convs:
            raise UserError(f"unknown layer {train_from!r}; choose from {', '.join(convs)}")
        self.head_index = LAYER_NAMES.index(head_layer)
        self.train_index = LAYER_NAMES.index(train_from)
        if self.train_index > self.head_index:
            raise UserError(f"{train_from} lies above the head's layer {head_layer}")
        self.vgg = VGGFeatures(["relu5_4"], weights=weights)
        for index in range(self.train_index, self.head_index + 1):
            module = self.vgg.features[index]
            if isinstance(module, nn.Conv2d):
                for name in ("weight", "bias"):
                    tensor = module._buffers.pop(name)
                    module.register_parameter(name, nn.Parameter(tensor.clone()))
        width = self.vgg.features[self.head_index - 1].out_channels
        self.head = nn.Linear(width, num_classes)

    def conv_parameters(self) -> list[nn.Parameter]:
        return list(self.vgg.features.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.vgg.normalize(images)
        with torch.no_grad():
            for module in self.vgg.features[: self.train_index]:
                x = module(x)
        for module in self.vgg.features[self.train_index : self.head_index + 1]:
            x = module(x)
        pooled = x.mean(dim=(2, 3))
        # Caffe-scaled activations run into the hundreds; normalised, the head's logits start
        # small whatever the weight source, and its learning rate means the same for each.
        return self.head(F.layer_norm(pooled, pooled.shape[1:]))

    def features_state_dict(self) -> dict[str, torch.Tensor]:
        """Every convolution as ``N.weight``/``N.bias`` (the torchvision features layout that
        ``loss.vgg_weights=FILE`` reads)."""
        state = {}
        for index, module in enumerate(self.vgg.features):
            if isinstance(module, nn.Conv2d):
                state[f"{index}.weight"] = module.weight.detach().float().cpu().contiguous()
                state[f"{index}.bias"] = module.bias.detach().float().cpu().contiguous()
        return state


@dataclass(frozen=True)
class FinetuneSettings:
    steps: int = 300
    batch: int = 8
    crop: int = 128
    conv_lr: float = 1e-5
    head_lr: float = 1e-3
    holdout: float = 0.25
    eval_crops: int = 12
    head_layer: str = "relu5_1"
    train_from: str = "conv4_1"
    weights: str = "caffe"
    seed: int = 0

    def check(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.eval_crops < 1:
            raise UserError("--steps, --batch and --eval-crops must be at least 1")
        if self.crop < 32:
            raise UserError("--crop must be at least 32 px")
        if not 0 < self.holdout < 1:
            raise UserError(f"--holdout must lie between 0 and 1, got {self.holdout}")
        if not (self.conv_lr >= 0 and self.head_lr > 0):
            raise UserError("--lr must be >= 0 and --head-lr > 0")


@dataclass
class FinetuneResult:
    """Per-class held-out accuracy, the mean training loss over the last tenth of steps,
    and how each style was split."""

    accuracy: dict[str, float]
    train_loss: float
    splits: dict[str, str]

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy)


@torch.no_grad()
def heldout_accuracy(
    model: VGGClassifier, splits: list[StyleSplit], device: torch.device
) -> dict[str, float]:
    """Share of each style's held-out crops that the classifier names correctly."""
    model.eval()
    accuracy = {}
    for label, split in enumerate(splits):
        crops = torch.stack(split.heldout).to(device)
        predicted = torch.cat([model(batch).argmax(1) for batch in crops.split(16)])
        accuracy[split.name] = (predicted == label).float().mean().item()
    return accuracy


def finetune(
    styles: list[StyleSet],
    settings: FinetuneSettings,
    device: torch.device,
    progress: bool = True,
) -> tuple[VGGClassifier, FinetuneResult]:
    """Train the classifier on random crops of the training split; score it on the held-out
    crops."""
    settings.check()
    if len(styles) < 2:
        raise UserError(f"need at least two styles to tell apart, found {len(styles)}")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    splits = [
        split_style(style, settings.crop, settings.holdout, settings.eval_crops, 3 * settings.crop)
        for style in styles
    ]
    model = VGGClassifier(
        len(styles), settings.weights, settings.head_layer, settings.train_from
    ).to(device)
    groups = [{"params": model.head.parameters(), "lr": settings.head_lr}]
    if settings.conv_lr > 0:
        groups.append({"params": model.conv_parameters(), "lr": settings.conv_lr})
    optimizer = torch.optim.Adam(groups)
    losses: list[float] = []
    bar = tqdm(range(settings.steps), desc="fine-tuning VGG", unit="step", disable=not progress)
    for _ in bar:
        model.train()
        labels = [rng.randrange(len(splits)) for _ in range(settings.batch)]
        crops = [
            random_crop(rng.choice(splits[label].train), settings.crop, rng) for label in labels
        ]
        logits = model(torch.stack(crops).to(device))
        loss = F.cross_entropy(logits, torch.tensor(labels, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    tail = losses[-max(1, len(losses) // 10) :]
    result = FinetuneResult(
        accuracy=heldout_accuracy(model, splits, device),
        train_loss=sum(tail) / len(tail),
        splits={split.name: split.how for split in splits},
    )
    return model, result


def save_features(model: VGGClassifier, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the features file atomically, naming its input convention in the metadata."""
    from safetensors.torch import save_file

    meta = {PREPROCESS_KEY: model.vgg.preprocess, **(metadata or {})}
    state = model.features_state_dict()
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
    return path
