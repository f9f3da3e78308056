"""A killed training run saves its step, says how to resume, exits non-zero, and resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import REPO, TINY, compose_cfg

from fastnst.training.run import run

RESUME = re.compile(
    r"error: interrupted \((SIGTERM|Ctrl-C)\) at step (\d+); resume with ckpt_path=(\S+)"
)


def _start(tmp_path: Path) -> subprocess.Popen:
    """A long tiny run with one data-loader worker, in a process group of its own: a
    terminal's Ctrl-C and ``kill -- -PGID`` signal the workers too, not just the trainer."""
    overrides = [o for o in TINY if not o.startswith(("callbacks.", "data.num_workers"))]
    return subprocess.Popen(
        [
            sys.executable,
            "train.py",
            *overrides,
            "trainer.max_steps=100000",
            "callbacks.checkpoint.every_n_train_steps=100000",
            "callbacks.sample_grid.every_n_steps=0",
            "data.num_workers=1",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_training(proc: subprocess.Popen, tmp_path: Path, seconds: float = 300) -> None:
    """Until the run logs its styles (the trainer's signal handlers are set up right after),
    then a few seconds more, so some steps are done."""
    log = tmp_path / "train.log"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and "styles:" in log.read_text():
            time.sleep(6)
            return
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the training run did not start")


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        (signal.SIGTERM, 143),
        # The same path through Lightning's Ctrl-C handling, ~20 s more: `make test-all`.
        pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),
    ],
)
def test_killed_run_saves_its_step_and_resumes(tmp_path: Path, sig: int, code: int) -> None:
    proc = _start(tmp_path)
    _wait_for_training(proc, tmp_path)
    os.killpg(proc.pid, sig)  # the trainer and its worker, as a terminal's Ctrl-C does
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    match = RESUME.search(stderr.strip().splitlines()[-1])
    assert match, stderr[-2000:]
    step, ckpt = int(match.group(2)), Path(match.group(3))
    assert step >= 1 and ckpt == tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == step
    assert not list(ckpt.parent.glob(".*.tmp"))
    assert not (tmp_path / "spiderverse.safetensors").exists()

    resumed = run(
        compose_cfg(
            tmp_path / "resumed", [*TINY, f"trainer.max_steps={step + 2}", f"ckpt_path={ckpt}"]
        )
    )
    assert resumed["trainer"].global_step == step + 2
