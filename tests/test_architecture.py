"""docs/architecture.md matches the code: what it names exists, and it names every module."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
NAMED = set(re.findall(r"`(src/movierec/[\w/]+\.py)`", DOC))


def test_every_module_the_doc_names_exists():
    assert len(NAMED) > 40
    assert [path for path in sorted(NAMED) if not (ROOT / path).is_file()] == []


def test_the_doc_names_every_module_of_the_package():
    modules = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "movierec").rglob("*.py")
        if path.name != "__init__.py" or path.parent.name in {"movierec", "cli", "models"}
    }
    assert sorted(modules - NAMED) == []


def test_the_named_symbols_are_where_the_doc_says():
    from movierec import pipeline, recommend
    from movierec.config import Job
    from movierec.train import loop, trainer

    assert callable(pipeline.fit_recommender) and callable(loop.fit)
    assert hasattr(trainer.Trainer, "train_epoch") and hasattr(trainer.Trainer, "state_dict")
    assert hasattr(recommend, "Recommender") and hasattr(Job, "from_context")
