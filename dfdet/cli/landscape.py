"""`dfdet landscape MODEL FEATS`: how sharp is the minimum a model found? (Hessian, random directions, sharpness)."""

from __future__ import annotations

import click

from dfdet.console import current_settings


@click.command("landscape")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("feats", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output", required=True, help="JSON file to write ('-' for stdout).")
@click.option(
    "--max-rows", type=int, default=2000, show_default=True, help="Seeded subsample of labelled rows (0 = all)."
)
@click.option("--directions", type=int, default=2, show_default=True, help="Filter-normalised random directions.")
@click.option("--alphas", default="-1:1:41", show_default=True, help="Step grid START:STOP:N or a,b,c (0 is added).")
@click.option(
    "--surface", default=None, help="Also a 2-D surface over the first two directions on this grid (e.g. -1:1:11)."
)
@click.option(
    "--power-iters", type=int, default=100, show_default=True, help="Maximum power iterations per eigenvalue."
)
@click.option("--eigenvalues", "k", type=int, default=1, show_default=True, help="Top-k Hessian eigenvalues.")
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Relative tolerance of power iteration.")
@click.option("--delta", type=float, default=0.1, show_default=True, help="Flat region: loss <= loss(0) + delta.")
@click.option("--relative-delta", is_flag=True, help="Flat region: loss <= loss(0) * (1 + delta) instead.")
@click.option("--rho", type=float, default=0.05, show_default=True, help="Radius of the SAM-style sharpness.")
@click.option(
    "--keskar", "keskar_eps", type=float, default=None, help="Also Keskar et al. sharpness with this epsilon."
)
@click.option("--interp-points", type=int, default=25, show_default=True, help="Points on t in [-0.25, 1.25].")
@click.option("--skip-interpolation", is_flag=True, help="Skip the initial-to-final weight interpolation.")
@click.option(
    "--batch-size",
    type=int,
    default=128,
    show_default=True,
    help="Rows per forward pass (0 = all at once); the loss is always the full-data mean, only speed/memory change.",
)
def landscape(
    model: str,
    feats: str,
    output: str,
    max_rows: int,
    directions: int,
    alphas: str,
    surface: str | None,
    power_iters: int,
    k: int,
    tol: float,
    delta: float,
    relative_delta: bool,
    rho: float,
    keskar_eps: float | None,
    interp_points: int,
    skip_interpolation: bool,
    batch_size: int | None,
) -> None:
    """Measure the loss landscape of MODEL on the labelled rows of FEATS (normally its training data).

    Writes JSON with the top Hessian eigenvalue(s) of the model's own training loss (power iteration with
    Hessian-vector products), loss and accuracy along filter-normalised random directions (Li et al. 2018) with the
    flat-region width, the loss along the line from the initial to the final weights (initial weights from the
    model file, else rebuilt from the training seed), and SAM-style epsilon-sharpness; every value comes with its
    definition, and the curves are there for plots. The model runs in eval mode with its own feature scaler.

    \b
    Example (the study's split, Adam vs AdamW):
      dfdet split features_robust.npz --sklearn-compatible -o study/
      dfdet train study/train.h5 --optimizer adam -o adam.pt
      dfdet landscape adam.pt study/train.h5 -o adam_landscape.json
    """
    import json
    import time

    from dfdet.artifact import load_model
    from dfdet.console import info, verbose
    from dfdet.heap import keep_large_buffers
    from dfdet.jsonio import write_json
    from dfdet.landscape import measure_landscape, parse_grid
    from dfdet.provenance import file_hash, provenance
    from dfdet.store import load_features

    keep_large_buffers()  # full-data Hessian-vector products reuse large buffers: keep them mapped
    settings = current_settings()
    t0 = time.perf_counter()
    config = {
        "max_rows": max_rows,
        "directions": directions,
        "alphas": alphas,
        "surface": surface,
        "power_iters": power_iters,
        "eigenvalues": k,
        "tol": tol,
        "delta": delta,
        "relative_delta": relative_delta,
        "rho": rho,
        "keskar_epsilon": keskar_eps,
        "interpolation": not skip_interpolation,
        "interp_points": interp_points,
        "batch_size": batch_size,
        "seed": settings.seed,
    }
    verbose(f"landscape config: {json.dumps(config)}")
    detector = load_model(model)
    fs = load_features(feats)
    result = measure_landscape(
        detector,
        fs,
        max_rows=max_rows or None,
        n_directions=directions,
        alphas=parse_grid(alphas),
        surface_alphas=parse_grid(surface) if surface else None,
        power_iters=power_iters,
        k=k,
        tol=tol,
        delta=delta,
        relative_delta=relative_delta,
        rho=rho,
        keskar_epsilon=keskar_eps,
        interpolation=not skip_interpolation,
        interpolation_points=interp_points,
        batch_size=batch_size or None,
        seed=settings.seed,
        show_progress=True,
    )
    result["config"] = config
    result["provenance"] = provenance(
        model=str(model), model_hash=file_hash(model), features=str(feats), features_hash=file_hash(feats)
    )
    write_json(output, result, indent=2)
    h = result["hessian"]
    info(
        f"top Hessian eigenvalue {h['eigenvalues'][0]:.4g} ({h['iterations'][0]} iterations"
        f"{'' if h['converged'][0] else ', not converged'}); flat width {result['flat_width']:.3g}; "
        f"SAM sharpness {result['sam_sharpness']['sharpness']:.4g} in {time.perf_counter() - t0:.1f} s"
    )
