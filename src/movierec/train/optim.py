"""Optimisers of the training loop: dense Adam, or Adam with lazy row-wise embedding updates.

What this module holds:

- :class:`RowWiseAdam`: one ``torch.optim.Optimizer`` that runs plain Adam on the dense
  parameters (the MLP) and a lazy, row-wise Adam on the embedding tables: a step reads and
  writes only the rows whose gradient it received, so its cost follows the batch, not the
  number of users and items.
- :func:`build_optimizer`: the Adam a :class:`~movierec.config.TrainConfig` asks for.
- :func:`build_lbfgs`: full-batch L-BFGS (``TrainConfig.optimizer = "lbfgs"``), the Sparse FC
  and GLocal-K papers' optimiser; the trainer drives it with a closure.
- :func:`sparse_embeddings`: switches every ``nn.Embedding`` of a model to sparse gradients
  for the duration of a fit, and back afterwards.
- :func:`embedding_parameters`: the tables the row-wise optimiser (and the distributed row
  exchange) treat apart.

Why not ``torch.optim.SparseAdam``: it has no weight decay, it cannot hold the dense
parameters (so the learning-rate schedule and the checkpoint would see two optimisers), and it
bias-corrects with one global step count. Here each row keeps its own step count, so a row's
trajectory is exactly dense Adam run on the sequence of gradients that row received; weight
decay is Adam's coupled L2 term (``g + wd * w``) added to the touched rows' gradients, so a row
is pulled towards zero each time it is trained (rows seen more often are regularised more,
like a per-example L2 penalty), and a row never seen stays where it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam as functional_adam

from movierec.errors import ConfigError

EMBEDDING_OPTIMIZERS = ("dense", "row-wise")  # kept in step with movierec.config
OPTIMIZERS = ("adam", "lbfgs")  # kept in step with movierec.config


class RowWiseAdam(torch.optim.Optimizer):
    """Adam for dense parameters, lazy row-wise Adam for groups marked ``row_wise=True``.

    A row-wise parameter is a 2-D table ``[rows, dim]``. With a sparse gradient (from
    ``nn.Embedding(sparse=True)``) only the rows in its indices are updated: their moments,
    their step count and their weights. Untouched rows and their optimiser state are left
    bit-for-bit alone. A dense gradient on a row-wise parameter counts as touching every row.

    Args:
        params: Parameters or parameter groups; a group with ``row_wise=True`` holds tables.
        lr: Learning rate (the scheduler may change each group's ``lr``).
        betas: Adam's moment decay rates.
        eps: Adam's denominator term.
        weight_decay: Adam's coupled L2 weight decay (on touched rows only, for tables).
        foreach: Use the multi-tensor dense Adam (None: PyTorch's default for the device).
        fused: Use the fused dense Adam kernel (None: off).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "row_wise": False,
            "foreach": foreach,
            "fused": fused,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One Adam step: dense groups as torch.optim.Adam, row-wise groups lazily."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["row_wise"]:
                for param in group["params"]:
                    if param.grad is not None:
                        self._row_step(param, group)
            else:
                self._dense_step(group)
        return loss

    def _dense_step(self, group: dict[str, Any]) -> None:
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise ConfigError(
                    "a parameter outside the row-wise groups got a sparse gradient; "
                    "put the embedding tables in a group with row_wise=True"
                )
            state = self.state[param]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            params.append(param)
            grads.append(param.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        beta1, beta2 = group["betas"]
        functional_adam(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            foreach=group["foreach"],
            fused=group["fused"],
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    def _row_step(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[param]
        if not state:
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            # Per-row step counts: each row's bias correction follows its own history.
            state["row_step"] = torch.zeros(param.shape[0], dtype=param.dtype, device=param.device)
        grad = param.grad
        beta1, beta2 = group["betas"]
        if grad.is_sparse:
            grad = grad.coalesce()  # duplicate rows (a user twice in a batch) summed
            rows = grad.indices()[0]
            values = grad.values()
            if rows.numel() == 0:
                return
            weights = param.index_select(0, rows)
            moment = state["exp_avg"].index_select(0, rows)
            square = state["exp_avg_sq"].index_select(0, rows)
            count = state["row_step"].index_select(0, rows).add_(1)
        else:
            rows = None
            values = grad
            weights, moment, square = param, state["exp_avg"], state["exp_avg_sq"]
            count = state["row_step"].add_(1)
        if group["weight_decay"]:
            values = values.add(weights, alpha=group["weight_decay"])
        moment.mul_(beta1).add_(values, alpha=1 - beta1)
        square.mul_(beta2).addcmul_(values, values, value=1 - beta2)
        # Adam: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t per row.
        step_size = (group["lr"] / (1 - torch.pow(beta1, count))).unsqueeze(1)
        root = torch.sqrt(1 - torch.pow(beta2, count)).unsqueeze(1)
        denom = square.sqrt().div_(root).add_(group["eps"])
        update = moment.div(denom).mul_(step_size)
        if rows is None:
            param.sub_(update)
            return
        param.index_copy_(0, rows, weights.sub_(update))
        state["exp_avg"].index_copy_(0, rows, moment)
        state["exp_avg_sq"].index_copy_(0, rows, square)
        state["row_step"].index_copy_(0, rows, count)


def embedding_modules(model: nn.Module) -> list[nn.Embedding]:
    """Every ``nn.Embedding`` of ``model``, in module order."""
    return [module for module in model.modules() if isinstance(module, nn.Embedding)]


def embedding_parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    """The weight of every ``nn.Embedding`` of ``model`` that is trained."""
    return [m.weight for m in embedding_modules(model) if m.weight.requires_grad]


@contextlib.contextmanager
def sparse_embeddings(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Give every ``nn.Embedding`` of ``model`` sparse gradients inside the block.

    The models are written without knowing how they are optimised; the flag is flipped here,
    for the fit only, so saved models and evaluation are unaffected.
    """
    modules = embedding_modules(model) if enabled else []
    before = [module.sparse for module in modules]
    for module in modules:
        module.sparse = True
    try:
        yield
    finally:
        for module, flag in zip(modules, before, strict=True):
            module.sparse = flag


def build_optimizer(
    model: nn.Module,
    embedding_optimizer: str,
    lr: float,
    weight_decay: float,
    *,
    foreach: bool | None = None,
    fused: bool | None = None,
    ranking_lr: float | None = None,
) -> torch.optim.Optimizer:
    """The optimiser for one fit.

    Args:
        model: The model whose parameters are trained.
        embedding_optimizer: ``dense`` (``torch.optim.Adam`` over everything, today's
            behaviour) or ``row-wise`` (:class:`RowWiseAdam`: embedding tables lazily, row by
            row; the rest with dense Adam).
        lr: Learning rate.
        weight_decay: Adam's coupled L2 weight decay.
        foreach: Multi-tensor dense Adam (None: PyTorch's default).
        fused: Fused dense Adam kernel (None: PyTorch's default).
        ranking_lr: Learning rate of a ranking tower's parameters
            (:meth:`~movierec.models.base.RatingModel.ranking_only_prefix`; None: ``lr``); the
            tower takes no weight decay.

    Raises:
        ConfigError: For an unknown ``embedding_optimizer``.
    """
    tower = _tower_parameters(model)
    if embedding_optimizer == "dense":
        groups: list[dict[str, Any]] = [
            {"params": [p for p in model.parameters() if id(p) not in tower]}
        ]
        return torch.optim.Adam(
            groups + _tower_groups(model, tower, lr if ranking_lr is None else ranking_lr),
            lr=lr, weight_decay=weight_decay, foreach=foreach, fused=fused,
        )  # fmt: skip
    if embedding_optimizer != "row-wise":
        raise ConfigError(
            f"embedding_optimizer must be one of {', '.join(EMBEDDING_OPTIMIZERS)} "
            f"(got {embedding_optimizer!r})"
        )
    tables = {id(p) for p in embedding_parameters(model)}
    trained = [p for p in model.parameters() if p.requires_grad and id(p) not in tower]
    rest = [p for p in trained if id(p) not in tables]
    groups = []
    if tables:
        table_params = [p for p in trained if id(p) in tables]
        groups.append({"params": table_params, "row_wise": True})
    if rest:
        groups.append({"params": rest, "row_wise": False})
    tower_lr = lr if ranking_lr is None else ranking_lr
    for group in _tower_groups(model, tower, tower_lr):
        group["row_wise"] = all(id(p) in tables for p in group["params"])
        groups.append(group)
    return RowWiseAdam(groups, lr=lr, weight_decay=weight_decay, foreach=foreach, fused=fused)


def build_lbfgs(model: nn.Module, lr: float, iterations: int) -> torch.optim.LBFGS:
    """L-BFGS over every trained parameter: ``iterations`` iterations per ``step(closure)``.

    The line search is strong Wolfe (PyTorch's plain L-BFGS takes fixed steps of ``lr`` after
    the first, which a loss as curved as an autoencoder's overshoots). ``max_eval`` is left
    high so that ``iterations`` counts iterations, as SciPy's ``maxiter`` does in the papers'
    code, not function evaluations (PyTorch's default, ``1.25 * iterations``, would end a
    step after the first line search that needs two evaluations).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.LBFGS(
        params,
        lr=lr,
        max_iter=iterations,
        max_eval=iterations * 25,
        history_size=10,  # SciPy L-BFGS-B's default memory
        line_search_fn="strong_wolfe",
    )


def _tower_parameters(model: nn.Module) -> dict[int, torch.nn.Parameter]:
    """The parameters only a ranking tower reads (by id), empty when the model has none."""
    prefix = getattr(model, "ranking_only_prefix", lambda: None)()
    if prefix is None:
        return {}
    return {id(p): p for name, p in model.named_parameters() if name.startswith(prefix)}


def _tower_groups(
    model: nn.Module, tower: dict[int, torch.nn.Parameter], lr: float
) -> list[dict[str, Any]]:
    """The tower's optimiser group: its own learning rate, no weight decay (it has its own
    per-example L2). Tables and dense weights apart, for the row-wise optimiser."""
    if not tower:
        return []
    tables = {id(p) for p in embedding_parameters(model)}
    split = [
        [p for p in tower.values() if id(p) in tables],
        [p for p in tower.values() if id(p) not in tables],
    ]
    return [{"params": part, "lr": lr, "weight_decay": 0.0} for part in split if part]
