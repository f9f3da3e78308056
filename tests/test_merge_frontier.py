"""tools/merge_frontier.py: eval-video runs judged apart become one frontier, and runs that
judged different frames are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fastnst.evaluation.frontier import how_shown

from conftest import load_tool


def run(
    path: Path,
    rows: list[tuple[str, float, float, float]],
    frames: int = 30,
    smooth: float = 0,
    strength: float = 1.0,
) -> Path:
    """An eval-video --judge JSON with (model, blend, x_floor, style_distance) rows, the
    frames seen with ``--input-smooth smooth`` at ``--strength strength``."""
    results: list[dict[str, Any]] = [{"source": "input (floor)", "warping_error": 0.001}]
    for model, blend, x_floor, style in rows:
        shown = how_shown(smooth, strength, "flow", blend)
        results.append(
            {
                "source": model + shown,
                "model": model,
                "input_smooth": smooth,
                "strength": strength,
                "blend": blend,
                "blend_kind": "flow" if blend else "none",
                "warping_error": 0.001 * x_floor,
                "x_floor": x_floor,
                "style_loss": 1.0,
                "content_loss": 0.5,
                "style_distance": style,
                "content_distance": 1.2,
            }
        )
    settings = {"video": "clip.mp4", "frames": frames, "size": [64, 96], "flow": "dis"}
    path.write_text(json.dumps({**settings, "frame_step": 1, "style": 5, "results": results}))
    return path


def test_runs_judged_apart_make_one_frontier(tmp_path: Path, capsys: Any) -> None:
    tool = load_tool("merge_frontier")
    first = run(tmp_path / "a.json", [("/x/still_v1.safetensors", 0.0, 60.0, 0.36)])
    second = run(
        tmp_path / "b.json",
        [("classics", 0.0, 9.0, 0.50), ("/x/rec.safetensors", 0.0, 4.0, 0.45)],
    )
    third = run(tmp_path / "c.json", [("/x/rec.safetensors", 0.3, 3.0, 0.47)])
    smoothed = run(tmp_path / "d.json", [("/x/rec.safetensors", 0.3, 2.9, 0.47)], smooth=0.7)
    bolder = run(tmp_path / "e.json", [("/x/rec.safetensors", 0.0, 5.0, 0.38)], strength=1.2)
    out = tmp_path / "merged.json"
    argv = [str(first), str(second), str(third), str(smoothed), str(bolder), "--reference", "v1"]
    argv += ["--label", "still_v1=v1"]
    argv += ["--label", "rec=video", "--drop", "classics", "--target", "2", "10"]
    assert tool.main([*argv, "--json", str(out)]) == 0
    rows = {row["source"]: row for row in json.loads(out.read_text())["frontier"]}
    smoothed_blend = "video + input smooth 0.7 + flow blend 0.3"  # kept apart from the blend
    bold = "video at strength 1.2"  # kept apart from the model at its own strength
    assert set(rows) == {"v1", "video", "video + flow blend 0.3", smoothed_blend, bold}
    assert rows[bold]["pareto"] and rows[bold]["strength"] == 1.2
    assert rows[smoothed_blend]["pareto"] and not rows["video + flow blend 0.3"]["pareto"]
    assert rows["video"]["style_vs_reference_pct"] == pytest.approx(100 * (0.45 - 0.36) / 0.36)
    assert rows["v1"]["pareto"] and rows["video"]["pareto"]
    assert not any(row["meets_target"] for row in rows.values())
    assert "nearest" in capsys.readouterr().out


def test_runs_of_different_frames_are_refused(tmp_path: Path, capsys: Any) -> None:
    tool = load_tool("merge_frontier")
    first = run(tmp_path / "a.json", [("/x/v1.safetensors", 0.0, 60.0, 0.36)])
    second = run(tmp_path / "b.json", [("/x/rec.safetensors", 0.0, 4.0, 0.45)], frames=20)
    assert tool.main([str(first), str(second), "--reference", "v1"]) == 2
    assert capsys.readouterr().err.startswith("error: the runs judged different frames")
    assert tool.main([str(first), "--reference", "nothing"]) == 2


def test_the_longest_matching_label_wins_whatever_the_order() -> None:
    tool = load_tool("merge_frontier")
    labels = {"rec_v4sw2": "style x2", "rec_v4sw2_512": "style x2, 512 px"}
    assert tool.relabel("outputs/rec_v4sw2_512.safetensors", labels) == "style x2, 512 px"
    assert tool.relabel("outputs/rec_v4sw2.safetensors", labels) == "style x2"
    assert tool.relabel("outputs/other.safetensors", labels) == "outputs/other.safetensors"
