"""Gram vs covariance style statistics: the same Gatys optimisation with each, judged by both.

Both runs start from the photo and optimise for ``--steps`` L-BFGS steps, one with the loss of
``fastnst/conf/loss/default.yaml`` (Gram matrices of the VGG features, Gatys et al.), one with
``covariance.yaml`` (Gram matrices of the mean-centred features, with layer weights
re-measured for them; same layers, taps and weights otherwise). The two losses have different
scales, so every ``--every`` steps each image is scored by *both*: a statistic is better only
if its image wins on both. Writes a Markdown table, a JSON file, a loss plot and the images.

    fastnst gram-vs-cov --content ../shared/data/content/chelsea.png \\
        --style ../shared/data/styles/starry_night.jpg --size 128 --out docs/quality
"""

from __future__ import annotations

from fastnst.loss_comparison import LossOption, build_parser, main_for

STATS = LossOption(
    key="style_stat",
    values=("gram", "covariance"),
    names={"gram": "Gram", "covariance": "covariance"},
    noun="style statistic",
    title="Gram vs covariance style statistics",
    prefix="gram_vs_cov",
)
LOSS_FLAGS = {"gram": ("gram-loss", "default"), "covariance": ("cov-loss", "covariance")}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(STATS, "fastnst gram-vs-cov", __doc__, LOSS_FLAGS)
    return main_for(STATS, parser, LOSS_FLAGS, argv)
