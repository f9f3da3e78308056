"""The bad-input matrix for training and the app: one row per hostile input
(tests/bad_input.py checks a row)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bad_input import Row, check_row, photo, truncated_checkpoint


def _few_photos(count: int, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        (t / "photos").mkdir()
        for i in range(count):
            photo(t / "photos" / f"p{i}.png", (64, 64))
        return _train(t, "data=folder", f"data.dir={t / 'photos'}", *overrides)

    return setup


def _bad_yaml(t: Path) -> list[str]:
    (t / "conf" / "style").mkdir(parents=True)
    (t / "conf" / "style" / "mine.yaml").write_text("name: mine\nsets: [unclosed\n")
    return ["--config-dir", str(t / "conf"), *_train(t, "style=mine")]


def _train(t: Path, *overrides: str) -> list[str]:
    return [*overrides, f"hydra.run.dir={t / 'run'}", "trainer.max_steps=1"]


ROWS: dict[str, Row] = {
    # app
    "app --port 70000": Row(
        lambda t: ["--port", "70000"], 1, "error: --port must be in 1..65535", (), command="app"
    ),
    "app --max-upload-mb nan": Row(
        lambda t: ["--max-upload-mb", "nan"],
        1,
        "error: --max-upload-mb must be a finite number",
        (),
        command="app",
    ),
    # training
    "3 photos, batch of 4": Row(
        _few_photos(3),
        1,
        "error: 3 content photo(s) make no training batch: data.batch_size=4 needs at least 4",
        (),
        command="train",
    ),
    "1 photo, num_val=1": Row(
        _few_photos(1, "data.num_val=1"),
        1,
        "error: 1 content photo(s) make no training batch",
        (),
        command="train",
    ),
    "stage=distill without a teacher": Row(
        lambda t: _train(t, "stage=distill"),
        1,
        "error: distill.teacher is required",
        (),
        command="train",
    ),
    "data=folder without data.dir": Row(
        lambda t: _train(t, "data=folder"), 1, "error: data.dir is required", (), command="train"
    ),
    "malformed YAML under --config-dir": Row(
        _bad_yaml, 1, "error: malformed YAML in", (), command="train", contains="mine.yaml line 3"
    ),
    "NaN learning rate": Row(
        lambda t: _train(t, "model.optim.lr=nan"),
        1,
        "error: model.optim.lr must be a finite number, got nan",
        (),
        command="train",
    ),
    "inf style weight": Row(
        lambda t: _train(t, "loss.style_weight=inf"),
        1,
        "error: loss.style_weight must be a finite",
        (),
        command="train",
    ),
    "truncated ckpt_path": Row(
        lambda t: _train(t, f"ckpt_path={truncated_checkpoint(t)}"),
        1,
        "error: ckpt_path: ",
        (),
        command="train",
        contains="truncated or not a checkpoint",
    ),
    "negative style weight": Row(
        lambda t: _train(t, "loss.style_weight=-1"),
        1,
        "error: loss.style_weight must be a finite weight >= 0",
        (),
        command="train",
    ),
    "missing style folder": Row(
        lambda t: _train(t, "style=folder", f"style.dir={t / 'none'}"),
        1,
        "error: style folder not found",
        (),
        command="train",
    ),
    "empty data folder": Row(
        lambda t: ((t / "photos").mkdir(), _train(t, "data=folder", f"data.dir={t / 'photos'}"))[1],
        1,
        "error: ",
        (),
        command="train",
    ),
    "empty style folder": Row(
        lambda t: ((t / "art").mkdir(), _train(t, "style=folder", f"style.dir={t / 'art'}"))[1],
        1,
        "error: no style images",
        (),
        command="train",
    ),
    "finetune without a model": Row(
        lambda t: _train(t, "finetune=cin"),
        1,
        "error: finetune=cin trains only the style tables",
        (),
        command="train",
    ),
}


@pytest.mark.parametrize("name", [name for name, row in ROWS.items() if row is not None])
def test_bad_input_row(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_row(ROWS[name], tmp_path, capsys, monkeypatch)
