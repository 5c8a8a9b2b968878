"""benchmarks/sota.py keeps every record when runs finish at once (one per core)."""

import json
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import sota  # the harness lives in benchmarks/, not in the package


def _append_many(path: Path, worker: int) -> None:
    sota.JSON_OUT = path
    for n in range(20):
        sota.append_record({"worker": worker, "n": n})


def test_records_appended_by_concurrent_runs_are_all_kept(tmp_path):
    path = tmp_path / "sota.json"
    path.write_text(json.dumps([{"worker": -1, "n": 0}]))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    records = json.loads(path.read_text())
    assert len(records) == 1 + 4 * 20
    assert {(r["worker"], r["n"]) for r in records[1:]} == {
        (w, n) for w in range(4) for n in range(20)
    }
