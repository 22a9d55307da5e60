"""`dfdet train`: fit a detector on a feature store and write one self-contained model file."""

from __future__ import annotations

import json
import time

import click

from dfdet import console
from dfdet.cli.options import json_flag
from dfdet.errors import UsageError

# Static so `dfdet --help` never imports torch; the registries in dfdet.models / dfdet.optimizers are the truth and
# tests check these lists against them.
MODEL_CHOICES = ["cnn", "gmm", "lcnn", "linear", "logreg", "mlp"]
FRAME_MODELS = ["gmm", "lcnn"]  # read frame chunks: they need a frame store (dfdet featurize --recipe lfcc)
OPTIMIZER_CHOICES = ["sgd", "adam", "adamw", "rmsprop", "sam"]


def _batch_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None:
        return None
    if value.strip().lower() == "full":
        return "full"
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("use a positive integer or 'full'") from None
    if n < 1:
        raise click.BadParameter("use a positive integer or 'full'")
    return n


@click.command("train")
@click.argument("feats", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write (.pt).")
@click.option("--val", "val_path", type=click.Path(dir_okay=False), help="Validation store (else --val-split).")
@click.option(
    "--val-split",
    type=float,
    default=None,
    help="Hold out this fraction of the training rows for validation (stratified, speaker-disjoint when speakers "
    "are known; default 0.2, 0 = none; --protocol seed: 0).",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(dir_okay=False),
    help="Held-out store scored once at the end and reported in the model's summary; never used for any choice.",
)
@click.option(
    "--model",
    type=click.Choice(MODEL_CHOICES),
    default="cnn",
    show_default=True,
    help="Architecture. lcnn and gmm read frames: they need a frame store (featurize --recipe lfcc); the others read "
    "feature vectors (on a frame store: its per-utterance frame mean and std).",
)
@click.option(
    "--chunk-frames",
    type=click.IntRange(16),
    default=None,
    help="Frame models: frames per random training chunk, also the scoring chunk (default 400 = 4 s of lfcc).",
)
@click.option("--optimizer", type=click.Choice(OPTIMIZER_CHOICES), default="adamw", show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default: the optimizer's for the protocol).")
@click.option("--weight-decay", type=float, default=None, help="Weight decay (default: the optimizer's).")
@click.option("--momentum", type=float, default=None, help="SGD/RMSprop momentum; beta1 for Adam/AdamW.")
@click.option("--rho", type=float, default=None, help="SAM neighbourhood radius (default 0.05).")
@click.option(
    "--sam-base", type=click.Choice([o for o in OPTIMIZER_CHOICES if o != "sam"]), default=None, help="SAM's base."
)
@click.option("--epochs", type=int, default=None, help="Maximum epochs (default 20; --protocol seed: 50).")
@click.option(
    "--batch-size", callback=_batch_size, default=None, help="Rows per step, or 'full' (default 128; seed: full)."
)
@click.option("--loss", type=click.Choice(["bce", "focal"]), default=None, help="Default bce; --protocol seed: focal.")
@click.option(
    "--patience", type=int, default=None, help="Early-stopping patience in epochs on validation EER (0 = off)."
)
@click.option(
    "--protocol",
    type=click.Choice(["default", "seed"]),
    default="default",
    show_default=True,
    help="'seed' reproduces the study: full batch, focal, 50 epochs, its optimizer settings, no early stopping.",
)
@click.option(
    "--bn-recalibrate/--no-bn-recalibrate",
    default=None,
    help="Re-estimate BatchNorm statistics on the training inputs after training (default on; seed: off).",
)
@click.option(
    "--adversarial",
    metavar="METHOD:EPS",
    help="Adversarial training: replace half of each batch by FGSM/PGD examples in standardised feature space "
    "(fgsm:0.1, pgd:0.1[:STEPS], pgd-l2:0.5).",
)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option(
    "--history", "history_path", type=click.Path(dir_okay=False), help="History JSONL (default MODEL.history.jsonl)."
)
@click.option("--no-history", is_flag=True, help="Do not write the history file.")
@click.option(
    "--no-initial-state",
    is_flag=True,
    help="Leave the pre-training weights out of MODEL.pt (half the size; `landscape` rebuilds them from the seed).",
)
@json_flag("Print a JSON summary on stdout.")
def train(
    feats: str,
    output: str,
    val_path: str | None,
    val_split: float | None,
    test_path: str | None,
    model: str,
    chunk_frames: int | None,
    optimizer: str,
    lr: float | None,
    weight_decay: float | None,
    momentum: float | None,
    rho: float | None,
    sam_base: str | None,
    epochs: int | None,
    batch_size: int | str | None,
    loss: str | None,
    patience: int | None,
    protocol: str,
    bn_recalibrate: bool | None,
    adversarial: str | None,
    device: str,
    history_path: str | None,
    no_history: bool,
    no_initial_state: bool,
    as_json: bool,
) -> None:
    """Train a detector on FEATS (HDF5 store from `dfdet featurize`, or the study's .npz) and write MODEL.pt.

    Frame models (--model lcnn) train on a frame store (featurize --recipe lfcc): one random --chunk-frames chunk
    per utterance and epoch (shorter clips tiled), frames standardised per dimension with training statistics; they
    score whole utterances as the mean of consecutive chunk logits.

    Validation data (--val FILE, or a --val-split hold-out) chooses the epoch (early stopping on EER, best weights
    restored) and the decision threshold: the validation EER operating point, stored in the model on the
    bona-fide-positive score scale (score = -spoof logit). The standardiser is fitted on the training rows only.
    Writes MODEL.pt (loadable with torch.load(weights_only=True)) and MODEL.history.jsonl (per-step loss and gradient
    norms, per-epoch metrics). Same --seed, data and torch thread count (OMP_NUM_THREADS; recorded in the
    provenance) give identical weights on CPU.
    """
    from dfdet.artifact import save_result
    from dfdet.heap import keep_large_buffers
    from dfdet.store import load_features
    from dfdet.training import history_path_for, make_config, train_model, write_history

    keep_large_buffers()  # a one-shot process: full-batch steps stop page-faulting their tensors afresh
    settings = console.current_settings()
    if val_path and val_split:
        raise UsageError("--val and --val-split both given", "use one: a validation file or a hold-out fraction")
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}", "e.g. --epochs 30")
    if patience is not None and patience < 0:
        raise UsageError(f"--patience must be >= 0, got {patience}", "0 turns early stopping off")
    if sam_base and optimizer != "sam" or rho is not None and optimizer != "sam":
        raise UsageError("--rho/--sam-base apply only to --optimizer sam", "add --optimizer sam or drop them")
    if adversarial:
        from dfdet.perturb import parse_adversarial

        parse_adversarial(adversarial)  # a malformed spec fails before any data is read
    if chunk_frames is not None and model not in FRAME_MODELS:
        raise UsageError(f"--chunk-frames applies only to frame models ({', '.join(FRAME_MODELS)})", "drop it")
    if adversarial and model in FRAME_MODELS:
        raise UsageError(f"--adversarial is not available for frame model {model}", "drop --adversarial")
    t0 = time.perf_counter()
    overrides = {
        k: v
        for k, v in {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "rho": rho,
            "sam_base": sam_base,
        }.items()
        if v is not None
    }
    cfg = make_config(
        protocol,
        model=model,
        optimizer=optimizer,
        optimizer_overrides=overrides,
        epochs=epochs,
        batch_size=batch_size,
        loss=loss,
        patience=patience,
        val_split=0.0 if val_path else val_split,
        bn_recalibrate=bn_recalibrate,
        adversarial=adversarial,
        device=device,
        seed=settings.seed,
        chunk_frames=chunk_frames,
    )
    console.verbose(f"train: configuration {json.dumps(cfg.to_dict(), sort_keys=True)}")
    if model in FRAME_MODELS:
        from dfdet.frametraining import train_frame_stores

        result = train_frame_stores(feats, cfg, val_path, test_path, log=console.verbose)
    else:
        train_fs = load_features(feats)
        val_fs = load_features(val_path) if val_path else None
        test_fs = load_features(test_path) if test_path else None
        result = train_model(train_fs, val_fs, cfg, test_fs=test_fs, log=console.verbose)
    if not no_history:
        hist = history_path or history_path_for(output)
        write_history(hist, result.history)
    save_result(output, result, initial_state=not no_initial_state)
    s = result.summary
    if s.get("solver") == "convex":
        parts = [f"fitted {cfg.model} (sklearn lbfgs, {s['iterations']} iterations; --optimizer does not apply)"]
    elif s.get("solver") == "em":
        its = "/".join(str(i) for i in s["iterations"])
        conv = "" if s["converged"] else ", not converged"
        parts = [f"fitted {cfg.model} (sklearn EM, {its} iterations bona fide/spoof{conv}; --optimizer does not apply)"]
    else:
        head = f"trained {cfg.model}/{cfg.optimizer} ({cfg.protocol} protocol)"
        parts = [f"{head}: {s['epochs_run']} epoch(s), best {s['best_epoch']}"]
    if "val" in s:
        parts.append(f"val EER {100 * s['val']['eer']:.2f} % acc {100 * s['val']['acc']:.2f} %")
    if "test" in s:
        t = s["test"]
        eer_txt = f"EER {100 * t['eer']:.2f} % AUC {t['auc']:.4f} " if "eer" in t else ""
        parts.append(f"test {eer_txt}acc {100 * t['acc']:.2f} %")
    parts.append(f"threshold {result.threshold:.4g} ({result.threshold_source})")
    parts.append(f"{time.perf_counter() - t0:.1f} s -> {output}")
    console.info(", ".join(parts))
    if as_json:
        click.echo(
            json.dumps(
                {"model": output, "config": cfg.to_dict(), "threshold": result.threshold, "summary": s},
                sort_keys=True,
                allow_nan=True,
            )
        )
