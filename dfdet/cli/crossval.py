"""`dfdet crossval STORE --group system|source|family`: grouped cross-validation, per fold and pooled EER."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from dfdet import console
from dfdet.cli.train import MODEL_CHOICES, OPTIMIZER_CHOICES, _batch_size
from dfdet.errors import UsageError

F = TypeVar("F", bound=Callable)


OVERRIDES = ("lr", "weight_decay", "momentum", "rho", "sam_base")  # TrainConfig.optimizer_overrides


@dataclass
class TrainOptions:
    """The training options of the command line (named as the options), resolved per model into a TrainConfig."""

    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    rho: float | None = None
    sam_base: str | None = None
    epochs: int | None = None
    batch_size: int | str | None = None
    chunk_frames: int | None = None
    loss: str | None = None
    patience: int | None = None
    val_split: float | None = None
    protocol: str = "default"
    bn_recalibrate: bool | None = None
    device: str = "cpu"

    def check(self) -> None:
        """Refuse what click cannot: the same rules as `dfdet train`."""
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {self.epochs}", "e.g. --epochs 30")
        if (self.sam_base or self.rho is not None) and self.optimizer != "sam":
            raise UsageError("--rho/--sam-base apply only to --optimizer sam", "add --optimizer sam or drop them")
        if self.val_split is not None and not 0 <= self.val_split < 1:
            raise UsageError(f"--val-split must be in [0, 1), got {self.val_split}", "e.g. --val-split 0.2")

    def config(self, model: str, seed: int) -> Any:
        from dfdet.training import make_config

        values = asdict(self)
        overrides = {k: v for k in OVERRIDES if (v := values.pop(k)) is not None}
        return make_config(values.pop("protocol"), model=model, seed=seed, optimizer_overrides=overrides, **values)


def train_options(f: F) -> F:
    """The options of `dfdet train` that shape one training run (same names, choices and defaults)."""
    opts = [
        click.option("--optimizer", type=click.Choice(OPTIMIZER_CHOICES), default="adamw", show_default=True),
        click.option("--lr", type=float, default=None, help="Learning rate (default: the optimizer's)."),
        click.option("--weight-decay", type=float, default=None, help="Weight decay (default: the optimizer's)."),
        click.option("--momentum", type=float, default=None, help="SGD/RMSprop momentum; beta1 for Adam/AdamW."),
        click.option("--rho", type=float, default=None, help="SAM neighbourhood radius (default 0.05)."),
        click.option("--sam-base", type=click.Choice([o for o in OPTIMIZER_CHOICES if o != "sam"]), default=None),
        click.option("--epochs", type=int, default=None, help="Maximum epochs (default 20; --protocol seed: 50)."),
        click.option("--batch-size", callback=_batch_size, default=None, help="Rows per step, or 'full'."),
        click.option(
            "--chunk-frames", type=int, default=None, help="Frame models: chunk length in frames (default 400)."
        ),
        click.option("--loss", type=click.Choice(["bce", "focal"]), default=None),
        click.option("--patience", type=int, default=None, help="Early-stopping patience on validation EER (0 = off)."),
        click.option(
            "--val-split",
            type=float,
            default=None,
            help="Fraction of each fold's training rows held out, by whole systems/speakers, for early stopping and "
            "the threshold (default 0.2; 0 = none).",
        ),
        click.option("--protocol", type=click.Choice(["default", "seed"]), default="default", show_default=True),
        click.option("--bn-recalibrate/--no-bn-recalibrate", default=None),
        click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def table_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The stdout table: per model, one row per fold, the pooled row and one row per spoof family."""
    rows = []
    for m in doc["models"]:
        for f in m["folds"]:
            held = ",".join(f["held_out"])
            rows.append(
                [
                    m["model"],
                    str(f["fold"]),
                    held if len(held) <= 60 else held[:57] + "...",
                    str(f["n_train"]),
                    str(f["n_test_bonafide"]),
                    str(f["n_test_spoof"]),
                    _fmt(f["eer"]),
                    "-",
                    "-",
                ]
            )
        p = m["pooled"]
        ci = p.get("ci") or [None, None]
        rows.append(
            [m["model"], "pooled", "all", "-", str(p["n_bonafide"]), str(p["n_spoof"]), _fmt(p["eer"]), _fmt(ci[0])]
            + [_fmt(ci[1])]
        )
        for fam in m["per_family"]:
            ci = fam.get("ci") or [None, None]
            rows.append(
                [m["model"], f"family={fam['family']}", "all", "-", str(p["n_bonafide"]), str(fam["n_spoof"])]
                + [_fmt(fam["eer"]), _fmt(ci[0]), _fmt(ci[1])]
            )
        deg = m.get("degraded")
        for k in [{"kind": "all", **deg["all"]}, *deg["per_kind"]] if deg else []:
            ci = k.get("ci") or [None, None]
            rows.append(
                [m["model"], f"degraded={k['kind']}", "all", "-", str(k["n_bonafide"]), str(k["n_spoof"])]
                + [_fmt(k["eer"]), _fmt(ci[0]), _fmt(ci[1])]
            )
    return rows


TABLE_COLUMNS = ["model", "fold", "held_out", "n_train", "n_test_bonafide", "n_test_spoof", "eer_pct"]
TABLE_COLUMNS += ["ci_low_pct", "ci_high_pct"]


@click.command("crossval")
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--group",
    "group_by",
    type=click.Choice(["system", "source", "family"]),
    default="system",
    show_default=True,
    help="What never straddles train and test: spoof system, source (the store's collection column) or family.",
)
@click.option("--model", "models", multiple=True, type=click.Choice(MODEL_CHOICES), required=True, help="Repeatable.")
@click.option("--folds", default="5", show_default=True, help="K (grouped k-fold) or 'logo' (leave one group out).")
@click.option("--seed", type=int, default=None, help="Fold and training seed (default: the root --seed, 42).")
@click.option(
    "--speakers",
    type=click.Choice(["auto", "merge", "purge", "none"]),
    default="auto",
    show_default=True,
    help="Keep speakers off both sides: merge groups sharing a speaker, or purge test speakers from training; "
    "auto = merge for k-fold, purge for logo.",
)
@click.option(
    "--augmented",
    type=click.Choice(["train", "drop"]),
    default="train",
    show_default=True,
    help="Augmented copies (store column augment) are never tested; train on them with their group, or drop them.",
)
@click.option(
    "--bootstrap", "n_boot", type=click.IntRange(0), default=1000, show_default=True, help="Group resamples (0: no CI)."
)
@click.option(
    "--ci",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Level of the bootstrap intervals.",
)
@train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="JSON to write (for `report`).")
@click.option(
    "--scores",
    "scores_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for each model's out-of-fold score file MODEL.oof.tsv (labelled: for calibrate and evaluate).",
)
@click.option(
    "--degraded",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A store of augmented copies of STORE's clips (featurize --augment, same recipe): each copy is scored by the "
    "fold model that held out its clip; EER per augmentation kind (rows degraded=KIND).",
)
def crossval(
    store: str,
    group_by: str,
    models: tuple[str, ...],
    folds: str,
    seed: int | None,
    speakers: str,
    augmented: str,
    n_boot: int,
    ci: float,
    output: str | None,
    scores_dir: str | None,
    degraded: str | None,
    **train: Any,
) -> None:
    """Cross-validate detectors on STORE with groups that never straddle train and test.

    Spoof rows are grouped by --group; bona fide rows by speaker (collection where unknown; with --group source by
    collection, so each source is held out with its own bona fide); no speaker is on both sides (--speakers);
    augmented copies are never tested. Each fold trains each --model; its validation rows (early stopping and
    threshold) are whole systems/speakers of the fold's training rows. Prints a TSV table on stdout: per fold and
    pooled EER (%), the pooled one with a bootstrap CI over groups (spoof systems, bona fide speakers), and the
    pooled EER per spoof family. Scores are bona-fide-positive. Same --seed, same numbers. --degraded measures the
    same folds again on degraded copies of the test clips (rows degraded=KIND: telephone, codecs, noise, ...).

    \b
    Examples:
      dfdet crossval feats.h5 --group system --model linear -o cv_system.json
      dfdet crossval feats.h5 --group source --folds logo --model linear --model cnn -o cv_source.json
      dfdet featurize --labels labels.csv --recipe lfcc --augment 4 --augment-max-ops 1 --augment-seed 1 -o deg.h5
      dfdet crossval feats.h5 --model logreg --degraded deg.h5 -o cv_robust.json
    """
    from dfdet.crossval import CrossvalConfig, parse_folds, run_crossval
    from dfdet.jsonio import write_json

    t0 = time.perf_counter()
    mode, k = parse_folds(folds)
    topts = TrainOptions(**train)
    topts.check()
    seed = console.current_settings().seed if seed is None else seed
    cv = CrossvalConfig(group_by, k if mode == "kfold" else "logo", speakers, augmented, seed, n_boot, ci)
    doc = run_crossval(
        store,
        list(dict.fromkeys(models)),
        lambda m: topts.config(m, seed),
        cv,
        log=console.info,
        progress=lambda it: console.progress(it, desc="folds", unit="fold"),
        degraded=degraded,
    )
    doc["command"] = "crossval"
    if output:
        write_json(output, doc)
    if scores_dir:
        from dfdet.crossval import oof_tables
        from dfdet.scores import write_scores

        for name, table in oof_tables(doc, store).items():
            write_scores(Path(scores_dir) / f"{name}.oof.tsv", table)
    click.echo("\t".join(TABLE_COLUMNS))
    for row in table_rows(doc):
        click.echo("\t".join(row))
    for m in doc["models"]:
        p, fe = m["pooled"], m["fold_eer"]
        ci_txt = f" [{_fmt(p['ci'][0])}, {_fmt(p['ci'][1])}]" if p.get("ci") else ""
        console.info(
            f"{m['model']}: pooled EER {_fmt(p['eer'])} %{ci_txt} ({100 * ci:g} % CI, group bootstrap), "
            f"fold EER mean {_fmt(fe['mean'])} % max {_fmt(fe['max'])} % over {fe['n']} fold(s), {m['seconds']:.1f} s"
        )
    console.info(f"crossval: done in {time.perf_counter() - t0:.1f} s" + (f" -> {output}" if output else ""))
