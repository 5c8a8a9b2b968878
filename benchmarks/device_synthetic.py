"""The 25M-shaped synthetic ratings of the GPU check, drawn with torch on the device.

:func:`movierec.data.synthetic.synthetic_ratings` draws the same law with numpy into a pandas
frame, which an IdEncoder then encodes: about 45 s for 25M ratings on the GPU machine of the
first measurement, a tenth of the GPU check's time budget. Here the pairs and ratings are drawn
as index tensors directly on the device (the indices are the encoded ones): sorting-based
``torch.unique`` and gathers, which a GPU does in a fraction of the numpy time (not yet timed on
one: the GPU check records ``generate_seconds``); the tensors never leave it.

    python benchmarks/device_synthetic.py --device cuda      # prints the shape and seconds
"""

from __future__ import annotations

import argparse
import time

import torch

from movierec.data.tensors import RatingTensors

# ml-25m's users and items; its 25,000,095 ratings rounded up to 24 * 2**20, which every batch
# size of the GPU check divides: no partial last batch, so one compilation per compiled variant.
SHAPE_25M = {"users": 162_541, "items": 59_047, "ratings": 24 * 2**20}
RATING_SCALE = (0.5, 5.0)


def synthetic_tensors(
    n_users: int, n_items: int, n_ratings: int, device: torch.device, seed: int = 0
) -> RatingTensors:
    """``n_ratings`` distinct (user, item) pairs and their ratings, drawn on ``device``.

    The law of :func:`movierec.data.synthetic.synthetic_ratings` (users Zipf 0.6, items Zipf
    0.9, ratings ``mid + b_u + b_i + p_u . q_i + noise`` of rank 8, half stars on 0.5..5), with
    the popularity ranks shuffled over the indices (as in a real file) and pairs drawn until
    ``n_ratings`` are distinct; rows come in a random order. Fewer come back only if ten rounds
    of draws cannot find them (a tiny catalogue).
    """
    g = torch.Generator(device=device).manual_seed(seed)

    def ranked_cdf(n: int, exponent: float) -> tuple[torch.Tensor, torch.Tensor]:
        weight = 1.0 / torch.arange(1, n + 1, device=device, dtype=torch.float64) ** exponent
        cdf = torch.cumsum(weight / weight.sum(), 0)
        return cdf, torch.randperm(n, generator=g, device=device)  # rank -> index

    (user_cdf, user_of), (item_cdf, item_of) = ranked_cdf(n_users, 0.6), ranked_cdf(n_items, 0.9)

    def draw(cdf: torch.Tensor, index_of: torch.Tensor, n: int) -> torch.Tensor:
        u = torch.rand(n, generator=g, device=device, dtype=torch.float64)
        return index_of[torch.searchsorted(cdf, u).clamp_(max=len(cdf) - 1)]

    keys = torch.empty(0, dtype=torch.int64, device=device)
    for _ in range(10):
        short = n_ratings - len(keys)
        if short <= 0:
            break
        extra = max(1024, int(short * 1.3))
        fresh = draw(user_cdf, user_of, extra) * n_items + draw(item_cdf, item_of, extra)
        keys = torch.unique(torch.cat([keys, fresh]))
    keys = keys[torch.randperm(len(keys), generator=g, device=device)[:n_ratings]]
    users, items = keys // n_items, keys % n_items
    rank, std = 8, (0.5 / 8) ** 0.25

    def normal(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device) * scale

    user_f, item_f = normal(n_users, rank, scale=std), normal(n_items, rank, scale=std)
    user_b, item_b = normal(n_users, scale=0.4), normal(n_items, scale=0.5)
    low, high = RATING_SCALE
    value = (low + high) / 2 + 0.3 + user_b[users] + item_b[items]
    value = value + (user_f[users] * item_f[items]).sum(1) + normal(len(keys), scale=0.5)
    rating = (torch.round(value / 0.5) * 0.5).clamp_(low, high)
    return RatingTensors(users.contiguous(), items.contiguous(), rating.float().contiguous())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ratings", type=int, default=SHAPE_25M["ratings"])
    args = parser.parse_args()
    device = torch.device(args.device)
    started = time.perf_counter()
    data = synthetic_tensors(SHAPE_25M["users"], SHAPE_25M["items"], args.ratings, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    print(f"{len(data):,} ratings on {device} in {seconds:.2f} s; mean {data.rating.mean():.3f}")


if __name__ == "__main__":
    main()
