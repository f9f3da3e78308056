"""Post-ReLU vs post-conv VGG taps: the same Gatys optimisation with each, judged by both.

Both runs start from the photo and optimise for ``--steps`` L-BFGS steps, one with the
loss of ``fastnst/conf/loss/default.yaml`` (taps after each ReLU), one with ``post_conv.yaml``
(the same layers before their ReLU, with layer weights re-measured for those taps). Raw
loss values of two different losses do not compare, so every ``--every`` steps each image
is scored by *both* losses: a tap choice is better only if its image wins on both.
Writes a Markdown table, a JSON file, a loss plot and the final images.

    fastnst relu-vs-conv --content ../shared/data/content/chelsea.png \\
        --style ../shared/data/styles/starry_night.jpg --out docs/quality
"""

from __future__ import annotations

from fastnst.loss_comparison import LossOption, build_parser, main_for

TAPS = LossOption(
    key="tap",
    values=("relu", "conv"),
    names={"relu": "post-ReLU", "conv": "post-conv"},
    noun="tap point",
    title="Post-ReLU vs post-conv VGG taps",
    prefix="relu_vs_conv",
)
LOSS_FLAGS = {"relu": ("relu-loss", "default"), "conv": ("conv-loss", "post_conv")}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(TAPS, "fastnst relu-vs-conv", __doc__, LOSS_FLAGS)
    return main_for(TAPS, parser, LOSS_FLAGS, argv)
