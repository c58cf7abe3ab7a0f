"""``omega baselines``: the centralised reference recommenders on a MovieLens log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from omega.cli._output import JsonOption, console, emit, emit_rows
from omega.errors import ConfigError

if TYPE_CHECKING:
    from omega.sim.datasets import Dataset

__all__ = ["register"]

_SHOWN = (
    "ndcg@10",
    "ndcg@10_se",
    "ndcg@10_pessimistic",
    "hr@10",
    "hr@10_pessimistic",
    "mrr",
    "map@10",
)


def baselines(
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="MovieLens directory (ml-latest or ml-100k layout); default $OMEGA_DATASET."
        ),
    ] = None,
    names: Annotated[
        str,
        typer.Option(
            help="Comma-separated baselines: popularity, transitions, cowatch, cowatch_k3, "
            "item_knn, als (the last two need the als extra)."
        ),
    ] = "popularity,transitions,cowatch,cowatch_k3",
    seed: Annotated[int, typer.Option(help="ALS's seed and coverage's tie-breaking.")] = 0,
    validation: Annotated[
        bool,
        typer.Option(
            "--validation",
            help="Hold out each viewer's second-to-last interaction (the last dropped): "
            "for tuning.",
        ),
    ] = False,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Instead: search the co-watch grid (omega.sim.cowatch.GRID) for each "
            "co-watch name in --names; use with --validation.",
        ),
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="With --tune: rows shown per name.")] = 5,
    viewer_share: Annotated[
        float,
        typer.Option(help="Keep a random share of the viewers (drawn with --seed), in (0, 1]."),
    ] = 1.0,
    synthetic: Annotated[
        str | None,
        typer.Option(
            help="Instead of --dataset: the demo's synthetic log, TITLES,VIEWERS,DAYS "
            "(e.g. 600,400,30)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit each baseline on the train split and rank every unseen title for each viewer's
    held-out interaction: tie-fair NDCG@10 / HR@10 (pessimistic beside), MRR, MAP@k,
    Recall@k and coverage@k for k = 5, 10, 20."""
    from omega.sim.baselines import BASELINES, baseline_report

    chosen = tuple(name.strip() for name in names.split(",") if name.strip())
    unknown = [name for name in chosen if name not in BASELINES]
    if not chosen or unknown:
        raise ConfigError(f"--names takes a comma-separated subset of {', '.join(BASELINES)}")
    if not 0.0 < viewer_share <= 1.0:
        raise ConfigError("--viewer-share must be in (0, 1]")
    log = _log(dataset, synthetic, viewer_share, seed)
    if tune:
        _tune(log, chosen, seed=seed, validation=validation, top=top, as_json=as_json)
        return
    report = baseline_report(log, seed=seed, names=chosen, validation=validation)
    report["viewer_share"] = viewer_share
    if as_json:
        emit(report, as_json=True)
        return
    rows = [
        {"baseline": name} | {key: figures[key] for key in _SHOWN}
        for name, figures in report["baselines"].items()
    ]
    emit_rows(
        rows,
        as_json=False,
        title=f"Baselines — {report['viewers']:,} viewers, {report['holdout']} held out",
        caption="tie-fair (expected under random tie-breaking); pessimistic: ties count against",
    )


def _log(dataset: Path | None, synthetic: str | None, share: float, seed: int) -> Dataset:
    """The viewing log the flags name, with only ``share`` of its viewers."""
    from omega.cli.simulate import dataset_path
    from omega.sim.datasets import load_dataset
    from omega.sim.evaluation import viewer_subsample
    from omega.sim.viewers import synthetic_dataset

    if synthetic is None:
        log = load_dataset(dataset_path(dataset))
    else:
        try:
            titles, viewers, days = (int(part) for part in synthetic.split(","))
        except ValueError:
            raise ConfigError("--synthetic takes TITLES,VIEWERS,DAYS, e.g. 600,400,30") from None
        log = synthetic_dataset(titles=titles, viewers=viewers, days=days, seed=seed)
    return log if share == 1.0 else viewer_subsample(log, share, seed=seed)


def _tune(
    dataset: Dataset,
    names: tuple[str, ...],
    *,
    seed: int,
    validation: bool,
    top: int,
    as_json: bool,
) -> None:
    from omega.sim.cowatch import tune
    from omega.sim.evaluation import split, validation_dataset

    floors = {"cowatch": 1, "cowatch_k3": 3}
    if not all(name in floors for name in names):
        raise ConfigError("--tune searches co-watch settings: give --names cowatch,cowatch_k3")
    data = split(validation_dataset(dataset) if validation else dataset)
    result: dict[str, Any] = {
        "dataset": str(dataset.path),
        "holdout": "second-to-last (validation)" if validation else "last",
        "seed": seed,
    }
    for name in names:
        rows = tune(data, min_viewers=floors[name], seed=seed)
        result[name] = rows if as_json else rows[:top]
        if not as_json:
            emit_rows(rows[:top], as_json=False, title=f"{name}: best of {len(rows)} settings")
    if as_json:
        emit(result, as_json=True)
    elif not validation:
        console.print("tuned on the test split: add --validation to choose settings fairly")


def register(app: typer.Typer) -> None:
    app.command("baselines")(baselines)
