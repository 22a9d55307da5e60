"""`dfdet app`: serve the Streamlit detection page on localhost (streamlit is the optional `app` extra)."""

from __future__ import annotations

import click

from dfdet.cli.options import min_seconds_option


@click.command("app")
@click.option(
    "--models",
    type=click.Path(exists=True, file_okay=False),
    help="Directory searched (recursively) for models, calibration/ensemble JSONs, histories and evaluations "
    "(default: the shipped detectors, see dfdet models).",
)
@click.option(
    "--detector",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve one detector file instead: a model .pt, a calibration JSON or an ensemble JSON.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port on localhost.")
@click.option(
    "--max-upload-mb",
    type=click.IntRange(1, 4096),
    default=50,
    show_default=True,
    help="Largest accepted upload per file (Streamlit's server.maxUploadSize, also checked by the page).",
)
@min_seconds_option
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab (the URL is printed on stderr).")
def app(
    models: str | None, detector: str | None, port: int, max_upload_mb: int, min_seconds: float, no_browser: bool
) -> None:
    """Start the detection web app (Streamlit) on http://localhost:PORT and serve until Ctrl-C.

    Upload files (wav, flac, ogg, mp3) or record from the microphone; each gets a decision, the calibrated spoof
    probability and every member model's probability at the operating point chosen among the calibration/ensemble
    files in --models (their own thresholds). Batch uploads give a sortable table and the TSV `dfdet score` writes.
    The Inspect tab shows waveform, log-mel spectrogram, the feature vector by group and the clip's saliency; the
    Models tab shows training curves, gradient norms, ensemble weights/flips and evaluation metrics.

    Without --models or --detector the page serves the shipped detectors (`dfdet models` lists them).

    Scores are BONA-FIDE-POSITIVE (higher = more likely genuine); P(spoof) = sigmoid(-score). The server listens on
    localhost only; uploads are processed in a temporary directory and deleted.

    \b
    Examples:
      dfdet app                            # the shipped detectors
      dfdet app --models demo              # after `make demo`: models/, cal/, ens/, eval/ under demo/
      dfdet app --detector ens.json --port 8600 --no-browser
    """
    from dfdet import console
    from dfdet.app import INSTALL_HINT, check_port, page_args, serve, server_command, streamlit_available
    from dfdet.errors import DfdetError

    if not streamlit_available():
        raise DfdetError("streamlit is not installed, so the web app cannot start", INSTALL_HINT)
    if models is None and detector is None:
        from dfdet.shipped import shipped_root

        models = str(shipped_root())
    args = page_args(models, detector, max_upload_mb, min_seconds)
    check_port(port)
    cmd = server_command(port, max_upload_mb, args)
    url = f"http://localhost:{port}/"
    console.verbose("app: " + " ".join(cmd))
    console.info(f"dfdet app: serving {models or detector} at {url} (Ctrl-C stops)")
    rc = serve(cmd, url, open_browser=not no_browser)
    if rc != 0:
        raise DfdetError(f"the streamlit server exited with status {rc}", "see its messages above")
