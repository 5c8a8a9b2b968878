"""The runs whose metrics must not change across a redesign (see tests/test_pipeline.py).

Kept free of movierec imports so that the code before a change can produce the golden file
(run the old checkout's generator with PYTHONPATH pointing at the old src).
Every case trains on ml-100k ``u1`` with seed 0 on one CPU thread.
"""

import platform
import re
from pathlib import Path

import torch

# key: (model name, model options, training options)
CASES: dict[str, tuple[str, dict, dict]] = {
    "embedding-net": ("embedding-net", {}, {"epochs": 2}),
    "mf": ("mf", {}, {"epochs": 3}),
    "svdpp": ("svdpp", {}, {"epochs": 1}),
    "autorec": ("autorec", {}, {"epochs": 2}),
    "embedding-net-ensemble": ("embedding-net-ensemble", {}, {"epochs": 1}),
    "bias": ("bias", {}, {}),
    "mean": ("mean", {}, {}),
    "ease": ("ease", {}, {}),
    "popularity": ("popularity", {}, {}),
    "mf-bpr": ("mf", {}, {"epochs": 2, "objective": "bpr"}),
    "embedding-net-bce": ("embedding-net", {}, {"epochs": 1, "objective": "bce"}),
    "mf-row-wise": ("mf", {}, {"epochs": 2, "embedding_optimizer": "row-wise"}),
    "mf-one-cycle": ("mf", {}, {"epochs": 2, "schedule": "one-cycle"}),
}

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def fingerprint() -> dict[str, object]:
    """What decides the last digits of a float result: torch build, CPU model and vector ISA."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split()) if text else set()
    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }
