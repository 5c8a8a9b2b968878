"""The one chain from ratings to a usable recommender: :func:`fit_recommender`.

Data flows one way: canonical ratings (:class:`~movierec.data.RatingsData`) -> split ->
validation carve-out (from the training part only) -> :class:`~movierec.data.encoder.IdEncoder`
fitted on the ratings the model learns from -> tensors -> the Trainer -> model -> bias fallback
and seen items -> :class:`~movierec.recommend.Recommender`. ``movierec train``, ``compare``,
``tune``, ``benchmark``, the benchmarks and the tests' factories all go through it, so the chain
is written once.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from movierec.config import ModelSpec, RunOptions
from movierec.data import DataPolicy, RatingsData, load_data
from movierec.data.encoder import IdEncoder, normalise_ids
from movierec.data.splits import Split, carve_validation, check_split, make_split
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.errors import ConfigError, DataError, MovieRecWarning
from movierec.models import RatingModel, build_model, model_class
from movierec.models.bias import fit_biases
from movierec.models.features import EncodedFeature, encode_features
from movierec.recommend import Recommender
from movierec.train import ChosenEpochs, EpochRecord, configure_threads, fit
from movierec.train.checkpoint import TrainingState, check_position


def default_split(data: RatingsData) -> str:
    """``u1`` for ml-100k (its canonical fold), a seeded 80/20 random split otherwise."""
    return "u1" if data.layout == "ml-100k" and len(data.ratings) == 100_000 else "random:0.2"


@dataclass(frozen=True)
class Prepared:
    """A dataset split into the parts training and evaluation need.

    Attributes:
        data: The dataset (metadata, rating scale, provenance).
        split: The train/test split (raw IDs); the test part is only read by evaluation.
        n_valid: Rows of the validation carve-out.
        encoder: Raw ID <-> index maps, fitted on the ratings the model learns from.
        fit_tensors: The ratings the model learns from.
        valid_tensors: The validation carve-out (early stopping); may be empty.
        seen: Every training-part item of each user (left out of recommendations).
        valid_pairs: The carve-out's raw ``user_id``, ``item_id`` and ``rating`` (no
            timestamps: 20 bytes a row, 50 MB at 25M ratings), every row, those the fit part
            lacks included: what the run's validation predictions
            (:func:`validation_predictions`, a blend's training rows) are made for.
    """

    data: RatingsData
    split: Split
    n_valid: int
    encoder: IdEncoder
    fit_tensors: RatingTensors
    valid_tensors: RatingTensors
    seen: SeenItems
    valid_pairs: pd.DataFrame


def prepare(
    data: RatingsData, split: str | None, *, seed: int, validation_fraction: float
) -> Prepared:
    """Split, carve the validation set from the training part, encode, and tensorise.

    Raises:
        DataError: A part the model needs is empty (training, test, validation carve-out), or
            the training part holds a single item. Every training rating equal is a
            :class:`~movierec.errors.MovieRecWarning`: a ranking objective can use it, a rating
            model learns only that constant; so is a test part whose ratings are mostly (over
            :data:`COLD_SHARE`) by users or of items the training part lacks.
    """
    chosen = make_split(data.ratings, split or default_split(data), layout=data.layout, seed=seed)
    check_split(chosen)
    prepared = prepare_split(data, chosen, seed=seed, validation_fraction=validation_fraction)
    _check_fit_part(prepared)
    _check_cold_share(prepared)
    return prepared


COLD_SHARE = 0.25  # test ratings by unseen users (or of unseen items) beyond this: a warning


def _check_cold_share(prepared: Prepared) -> None:
    """Warn when more than :data:`COLD_SHARE` of the test ratings are by users, or of items,
    that the ratings the model learns from never hold: the model has nothing of theirs, so the
    test metrics say more about the fallback than about the model (a temporal split of
    ML-100K: 85% of its test ratings are by users who rated only later)."""
    test = prepared.split.test
    if not prepared.split.has_test or test.empty:
        return
    encoder = prepared.encoder
    shares = {
        "users": float((~test["user_id"].isin(pd.Index(encoder.user_ids))).mean()),
        "items": float((~test["item_id"].isin(pd.Index(encoder.item_ids))).mean()),
    }
    if max(shares.values()) <= COLD_SHARE:
        return
    warnings.warn(
        f"{shares['users']:.0%} of the {len(test):,} test ratings of split "
        f"{prepared.split.name} are by users, and {shares['items']:.0%} of items, that the "
        f"training part never saw (over {COLD_SHARE:.0%}): the model knows nothing of them, so "
        "the test metrics measure the cold-start fallback more than the model; a split that "
        "keeps every user in training (random, stratified, leave-last) measures the model",
        MovieRecWarning,
        stacklevel=3,
    )


def _check_fit_part(prepared: Prepared) -> None:
    """Refuse a training part with nothing to rank; warn when it holds one rating value."""
    fit_part = prepared.fit_tensors
    if prepared.encoder.n_items < 2:
        raise DataError(
            f"the training part of split {prepared.split.name} rates only "
            f"{prepared.encoder.n_items} item ({len(fit_part)} ratings): every list would be "
            "that one item; use data with more items"
        )
    ratings = fit_part.rating
    if len(ratings) and bool((ratings == ratings[0]).all()):  # torch tensor [n_fit]
        warnings.warn(
            f"every one of the {len(ratings)} training ratings is {float(ratings[0]):g}: a rating "
            "model can only learn that constant; fine for --objective bpr/bce on implicit "
            "feedback, otherwise use data with more than one rating value",
            MovieRecWarning,
            stacklevel=3,
        )


def prepare_split(
    data: RatingsData, chosen: Split, *, seed: int, validation_fraction: float
) -> Prepared:
    """:func:`prepare` for a split made elsewhere (the folds of :mod:`movierec.evaluate.protocols`).

    The validation set is carved from ``chosen.train`` only; the encoder sees only the ratings
    the model learns from.
    """
    fit_frame, valid_frame = carve_validation(chosen.train, validation_fraction, seed)
    if fit_frame.empty:
        raise DataError(
            f"the validation carve-out ({validation_fraction:g}) took all {len(chosen.train)} "
            f"training ratings of split {chosen.name}; use more ratings or a smaller "
            "validation_fraction in [train]"
        )
    if validation_fraction > 0 and valid_frame.empty:
        raise DataError(
            f"the validation carve-out ({validation_fraction:g} of the {len(chosen.train)} "
            f"training ratings of split {chosen.name}) is empty, so early stopping has nothing "
            "to judge; use more ratings, a larger validation_fraction in [train], or "
            "validation_fraction = 0 with a fixed number of epochs"
        )
    encoder = IdEncoder.fit(fit_frame)
    fit_tensors = RatingTensors.from_frame(fit_frame, encoder)
    del fit_frame
    seen = SeenItems.from_tensors(
        RatingTensors.from_frame(chosen.train, encoder), encoder.n_users, encoder.n_items
    )
    return Prepared(
        data,
        chosen,
        len(valid_frame),
        encoder,
        fit_tensors,
        RatingTensors.from_frame(valid_frame, encoder),
        seen,
        valid_frame[list(VALIDATION_KEYS)].reset_index(drop=True),
    )


VALIDATION_KEYS = ("user_id", "item_id", "rating")  # a carve-out row, as the blend reads it


def validation_predictions(recommender: Recommender, prepared: Prepared) -> pd.DataFrame | None:
    """``recommender``'s predictions for ``prepared``'s validation carve-out: ``user_id``,
    ``item_id``, ``rating`` (raw IDs, the true rating) and ``prediction`` (float64, as
    :meth:`Recommender.predict` answers: the bias fallback for pairs the fit part lacks,
    clipped to the scale); None without a carve-out or for a run that ranks (no ratings).

    Made by the model that trained on the fit part only, so a blend
    (:mod:`movierec.blend`) can learn its weights on rows none of its members learnt from.
    """
    if not prepared.n_valid or not recommender.predicts_ratings:
        return None
    pairs = prepared.valid_pairs
    frame = pairs.copy()
    frame["prediction"] = recommender.predict(
        pairs["user_id"].to_numpy(), pairs["item_id"].to_numpy()
    )
    return frame


def fit_recommender(
    data: RatingsData | Prepared | pd.DataFrame | str | Path,
    spec: ModelSpec | str | None = None,
    options: RunOptions | None = None,
    *,
    split: str | None = None,
    model: str | None = None,
    columns: Sequence[str] | None = None,
    policy: DataPolicy | None = None,
    items: pd.DataFrame | str | Path | None = None,
    users: pd.DataFrame | str | Path | None = None,
    item_columns: Sequence[str] | None = None,
    on_epoch: Callable[[EpochRecord, RatingModel], None] | None = None,
    checkpoint: Path | None = None,
    resume: TrainingState | None = None,
    context: dict | None = None,
    **keywords: Any,
) -> Recommender:
    """Train a model on ``data`` and return it as a :class:`Recommender` (raw IDs in and out).

    From Python the shortest way in is a DataFrame and keywords::

        recommender = fit_recommender(df, model="mf", n_factors=64, epochs=5, split="none")

    Args:
        data: A dataset (split here by ``split`` with ``options.seed``), an already
            :class:`Prepared` one (the folds of a protocol, or several models on one split),
            or what :func:`movierec.data.load_data` reads (a DataFrame of ratings, a catalogue
            name, a folder or a file), read with ``columns``, ``policy``, ``items`` and
            ``users``.
        spec: The model to train: a :class:`ModelSpec`, a registry name with its defaults, or
            None for the default model.
        options: Seed, device, threads, progress and speed options.
        model: The model's registry name (the same as a name in ``spec``; not both).
        columns: The ratings' user, item, rating[, timestamp] columns (default: found by
            common names), when ``data`` is read here.
        policy: Duplicates and rating scale (:class:`~movierec.data.DataPolicy`), when
            ``data`` is read here.
        items: Item metadata (titles, genres...) as a DataFrame or a file, when ``data`` is
            read here.
        users: User metadata as a DataFrame or a file, when ``data`` is read here.
        item_columns: The items' ID, title[, genres] columns (default: found by name).
        **keywords: The model's options (``n_factors=64``), training options
            (``epochs=5``, ``lr=...``) and run options (``seed``, ``progress``...) by name,
            checked as a TOML config's ``[model]``/``[train]`` tables are
            (:meth:`ModelSpec.from_keywords`); not with a :class:`ModelSpec`.
        split: The split's name when ``data`` is a dataset (None: :func:`default_split`);
            ``"none"`` trains on every rating (no test set), for the validation run's best
            epoch count, or for ``spec.train.epochs`` when ``validation_fraction`` is 0 (see
            :func:`_fit_on_everything`).
        on_epoch: Called after each epoch's validation with its record and the model in
            training (tuning prunes with it; a benchmark can snapshot the weights).
        checkpoint: Where training writes its checkpoints (None: none).
        resume: A checkpoint's state to continue from exactly.
        context: What is being trained, stored in checkpoints (:meth:`movierec.config.Job.context`).

    Returns:
        The recommender; ``recommender.training`` holds the history, best epoch and timing.

    Raises:
        ConfigError: A closed-form rating model was asked for a ranking objective, a keyword
            is no model, training or run option (the message lists them), or a value is
            refused.
        DataError: ``data`` read here cannot be read or breaks a policy.
    """
    spec, options = _spec_and_options(spec, options, model, keywords)
    if not isinstance(data, RatingsData | Prepared):
        data = load_data(
            data,
            columns=columns,
            policy=policy,
            items=items,
            users=users,
            item_columns=item_columns,
        )
    elif any(v is not None for v in (columns, policy, items, users, item_columns)):
        raise ConfigError(
            "columns, policy, items, users and item_columns apply when fit_recommender reads "
            "the data; pass them to load_data instead, or hand fit_recommender the DataFrame "
            "or path"
        )
    prepared = (
        data
        if isinstance(data, Prepared)
        else prepare(
            data, split, seed=options.seed, validation_fraction=spec.train.validation_fraction
        )
    )
    fit_args = {
        "on_epoch": on_epoch,
        "checkpoint": checkpoint,
        "resume": resume,
        "context": context,
    }
    if not prepared.split.has_test or spec.train.refit:
        recommender = _fit_on_everything(prepared, spec, options, **fit_args)
    else:
        recommender = _fit(prepared, spec, options, **fit_args)
    if not isinstance(data, Prepared):  # the seed that drew the split and the carve-out
        recommender.info.setdefault("seed", options.seed)
    return recommender


def _spec_and_options(
    spec: ModelSpec | str | None,
    options: RunOptions | None,
    model: str | None,
    keywords: dict[str, Any],
) -> tuple[ModelSpec, RunOptions]:
    """The spec and run options from :func:`fit_recommender`'s arguments, checked once."""
    if model is not None and spec is not None:
        raise ConfigError("give the model once: as spec or as model=, not both")
    if isinstance(spec, ModelSpec):
        if keywords:
            raise ConfigError(
                f"options {', '.join(sorted(keywords))} cannot change a ModelSpec; build the "
                f"spec with them (ModelSpec.resolve) or pass the model's name instead"
            )
        return spec, options or RunOptions()
    spec, run_values = ModelSpec.from_keywords(model or spec, keywords)
    if run_values and options is not None:
        raise ConfigError(
            f"run options {', '.join(sorted(run_values))} given both as keywords and in "
            f"options=; give them one way"
        )
    return spec, options or RunOptions(**run_values)


def _fit_on_everything(
    prepared: Prepared, spec: ModelSpec, options: RunOptions, **fit_args: Any
) -> Recommender:
    """Learn from the whole training part (every rating with ``--split none``, the refit of
    ``[train] refit = true`` otherwise), for a number of epochs chosen beforehand.

    With a validation carve-out in ``prepared`` (the spec's ``validation_fraction`` > 0) a
    first run trains on the rest with early stopping, and its best epoch is how long the final
    run trains from scratch on the whole training part ("epochs_from": "validation"); with a
    ranking tower each half keeps its weights after its own best epoch count
    (:class:`~movierec.train.ChosenEpochs`). Without one (``--epochs`` given with ``--split
    none``), the spec's ``epochs`` are trained ("epochs_from": "--epochs"). Only the final run
    checkpoints, reports epochs and meets ``on_epoch``; the chosen counts travel in its
    checkpoint's context, so a resumed refit continues without a second validation run.
    ``recommender.info`` records which rule chose (a closed-form model has no epochs:
    "closed form", and no refit: refused).
    """
    trains = _trains(spec, prepared)
    check_refit(spec, trains)
    facts, held_out = _chosen_epochs(prepared, spec, options, trains, fit_args.get("resume"))
    chosen = None
    if facts["epochs_from"] == "validation":
        validation = facts["validation"]
        chosen = ChosenEpochs(facts["epochs_best"], validation.get("rating_best_epoch"))
        train = dataclasses.replace(spec.train, epochs=chosen.total)
        spec = dataclasses.replace(spec, train=train)
    if prepared.n_valid:
        spec = dataclasses.replace(
            spec, train=dataclasses.replace(spec.train, validation_fraction=0.0, refit=False)
        )
        prepared = prepare_split(
            prepared.data, prepared.split, seed=options.seed, validation_fraction=0
        )
    if fit_args.get("context") is not None:  # what a resumed refit reads back
        fit_args["context"] = {**fit_args["context"], CHOSEN_KEY: facts}
    recommender = _fit(prepared, spec, options, chosen=chosen, **fit_args)
    # The refit model has learnt the carve-out: the validation run's predictions stand for it.
    recommender.validation = held_out
    facts = {k: v for k, v in facts.items() if k != "epochs_best"}
    recommender.info.update(facts)
    if prepared.split.has_test:
        recommender.info["refit"] = True
    return recommender


CHOSEN_KEY = "chosen_epochs"  # a refit checkpoint's context: the validation run's choice


def _chosen_epochs(
    prepared: Prepared,
    spec: ModelSpec,
    options: RunOptions,
    trains: bool,
    resume: TrainingState | None,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """How many epochs the run on the whole training part trains, and what chose them.

    A resumed run takes the choice its checkpoint recorded; otherwise a validation run on
    ``prepared``'s carve-out chooses (``epochs_best``: the epoch whose weights it kept, the
    ranking half's with a tower; ``epochs``: how many the final run trains). Second: that
    run's predictions for the carve-out (:func:`validation_predictions`; None without a
    validation run, a resumed refit's included: its validation run is not repeated).
    """
    if resume is not None and CHOSEN_KEY in resume.context:
        return dict(resume.context[CHOSEN_KEY]), None
    if not trains:
        return {"epochs_from": "closed form", "epochs": 0}, None
    if not prepared.n_valid:
        return {"epochs_from": "--epochs", "epochs": spec.train.epochs}, None
    early = _fit(prepared, spec, options)
    first = early.training
    best = first.best_epoch or len(first.history) or spec.train.epochs
    validation = {
        "n_valid": prepared.n_valid,
        "epochs_run": len(first.history),
        "best_epoch": first.best_epoch,
        "train_seconds": first.train_seconds,  # a refit costs this beside its own
    }
    if first.rating_best_epoch is not None:
        validation["rating_best_epoch"] = first.rating_best_epoch
    validation["history"] = first.history_rows()
    epochs = ChosenEpochs(best, first.rating_best_epoch).total
    facts = {
        "epochs_from": "validation",
        "epochs": epochs,
        "epochs_best": best,
        "validation": validation,
    }
    return facts, early.validation


def _trains(spec: ModelSpec, prepared: Prepared) -> bool:
    """Whether ``spec``'s model learns by epochs (closed-form models need no epoch count)."""
    return learns_by_epochs(spec, prepared.data.rating_scale)


def learns_by_epochs(spec: ModelSpec, rating_scale: tuple[float, float] = (1.0, 5.0)) -> bool:
    """Whether ``spec``'s model is trained epoch by epoch (EASE, popularity, the closed-form
    biases are fitted at once and have no epochs to choose)."""
    model = build_model(spec.name, 1, 1, rating_scale, spec.config)
    return model.trainable


def check_refit(spec: ModelSpec, trains: bool | None = None) -> None:
    """A ConfigError when ``spec`` asks for a refit it cannot have: its model has no epochs
    (closed form), or there is no validation carve-out to choose their count on.

    Args:
        spec: The model and training options.
        trains: Whether the model learns by epochs, when already known
            (:func:`learns_by_epochs` otherwise).
    """
    if not spec.train.refit:
        return
    if not (learns_by_epochs(spec) if trains is None else trains):
        raise ConfigError(
            f"refit retrains for the epoch count early stopping chose, but model {spec.name!r} "
            f"is fitted in closed form and has no epochs; drop --refit / [train] refit = true "
            f"for {spec.name!r}"
        )
    if spec.train.validation_fraction == 0:
        raise ConfigError(
            "refit needs [train] validation_fraction > 0: the epoch count it retrains for is "
            "chosen by early stopping on that carve-out (it is 0); raise it or drop --refit"
        )


def _fit(
    prepared: Prepared,
    spec: ModelSpec,
    options: RunOptions,
    *,
    on_epoch: Callable[[EpochRecord, RatingModel], None] | None = None,
    checkpoint: Path | None = None,
    resume: TrainingState | None = None,
    context: dict | None = None,
    chosen: ChosenEpochs | None = None,
) -> Recommender:
    """Train ``spec`` on ``prepared`` (validation carve-out for early stopping, if any; the
    ``chosen`` epochs' weights kept when a validation run chose them)."""
    configure_threads(options.threads)
    torch.manual_seed(options.seed)  # the run's seed: initialisation and dropout
    prepared, features = side_features(
        prepared, spec.config, model_class(spec.name).scores_unrated_items
    )
    encoder = prepared.encoder
    model = build_model(
        spec.name, encoder.n_users, encoder.n_items, prepared.data.rating_scale, spec.config
    )
    if features is not None:
        model.attach_features(*features)
    objective = effective_objective(spec, model)
    valid = prepared.valid_tensors if len(prepared.valid_tensors) else None
    if resume is not None:
        check_position(resume, len(prepared.fit_tensors), checkpoint)
    result = fit(
        model,
        prepared.fit_tensors,
        valid,
        spec.train,
        options,
        None if on_epoch is None else lambda record: on_epoch(record, model),
        checkpoint=checkpoint,
        resume=resume,
        context=context,
        chosen=chosen,
    )
    fallback = fit_biases(
        prepared.fit_tensors.user_idx,
        prepared.fit_tensors.item_idx,
        prepared.fit_tensors.rating,
        encoder.n_users,
        encoder.n_items,
    )
    recommender = Recommender(
        model,
        encoder,
        fallback,
        prepared.seen,
        prepared.data.items,
        objective=objective,
        info={
            "model": spec.name,
            "dataset": prepared.data.name,
            "split": prepared.split.name,
            "objective": objective,
        },
        training=result,
        spec=spec,
    )
    recommender.validation = validation_predictions(recommender, prepared)
    return recommender


def side_features(
    prepared: Prepared, config: Any, scores_unrated_items: bool
) -> tuple[Prepared, tuple[list[EncodedFeature], list[EncodedFeature]] | None]:
    """The metadata columns a model's config asks for (``user_features``, ``item_features``),
    encoded in the encoder's index order, for the model to keep as buffers.

    With item features and a model that ``scores_unrated_items`` (the EmbeddingNet), the items
    of the metadata that no training rating names join the catalogue (after the rated ones, so
    the training tensors' indices stand): their ID embeddings stay untrained, and the model
    scores them from their features (item cold start). Other models (Sparse FC's side term)
    leave them unknown: the bias fallback scores them. Without features, ``prepared`` is
    returned as it is and the features are None.

    Raises:
        ConfigError: A column is asked for that the metadata lacks, or there is no metadata.
        DataError: A column's values are neither text nor numbers.
    """
    user_names = tuple(getattr(config, "user_features", ()))
    item_names = tuple(getattr(config, "item_features", ()))
    if not user_names and not item_names:
        return prepared, None
    data = prepared.data
    users = encode_features(data.users, "user_id", prepared.encoder.user_ids, user_names, "user")
    if item_names and data.items is not None and scores_unrated_items:
        prepared = _with_unrated_items(prepared, data.items["item_id"])
    items = encode_features(data.items, "item_id", prepared.encoder.item_ids, item_names, "item")
    return prepared, (users, items)


def _with_unrated_items(prepared: Prepared, item_ids: pd.Series) -> Prepared:
    """``prepared`` with the items of ``item_ids`` it lacks appended to its encoder."""
    known = prepared.encoder.item_ids
    listed = normalise_ids(pd.unique(item_ids))
    if listed.dtype != known.dtype:  # text metadata IDs for integer ratings IDs: no match
        return prepared
    new = listed.difference(known).sort_values()
    if not len(new):
        return prepared
    encoder = IdEncoder(prepared.encoder.user_ids, known.append(new))
    seen = SeenItems.from_tensors(
        RatingTensors.from_frame(prepared.split.train, encoder), encoder.n_users, encoder.n_items
    )
    return dataclasses.replace(prepared, encoder=encoder, seen=seen)


def effective_objective(spec: ModelSpec, model: RatingModel) -> str:
    """The objective the run is trained with: ``spec``'s, or ``rating`` for a closed-form
    ranking model (the objective does not apply to it)."""
    objective = spec.train.objective
    if model.trainable or objective == "rating":
        return objective
    if model.predicts_ratings:
        raise ConfigError(
            f"model {spec.name!r} is fitted in closed form and predicts ratings; "
            f"--objective {objective} needs a trained model (embedding-net or mf); "
            f"use --objective rating with {spec.name!r}"
        )
    return "rating"
