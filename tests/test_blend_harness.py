"""benchmarks/blend.py: where each (fold, seed)'s members live and the sections it renders."""

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import blend  # the harness lives in benchmarks/, not in the package


def test_u1_members_keep_their_folder_and_other_folds_get_their_own():
    runs = Path("runs/blend")
    assert blend.unit_dir(runs, "u1", 2) == runs / "seed2"
    assert blend.unit_dir(runs, "u3", 0) == runs / "u3-seed0"


def test_the_committed_u1_section_is_what_its_json_renders():
    payload = json.loads(blend.JSON_OUT.read_text(encoding="utf-8"))
    doc = blend.RESULTS.read_text(encoding="utf-8")
    section = doc[doc.index(blend.START) : doc.index(blend.END) + len(blend.END)]
    assert blend.render(payload) == section


def test_a_folds_payload_renders_its_own_section_over_the_folds():
    payload = copy.deepcopy(json.loads(blend.JSON_OUT.read_text(encoding="utf-8")))
    for entry, fold in zip(payload["per_seed"], ("u1", "u2", "u3"), strict=True):
        entry["split"], entry["seed"] = fold, 0
    payload.update(folds=True, seeds=[0], command="python benchmarks/blend.py --folds")
    text = blend.render(payload)
    assert text.startswith(blend.FOLD_START) and text.endswith(blend.FOLD_END)
    assert "Mean ± sd over the folds u1, u2, u3 (seed 0 on each)" in text
    assert "Per fold (test RMSE): u1: blend" in text and "| test RMSE |" in text
