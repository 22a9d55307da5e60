"""The `dfdet app` page: Detect / Inspect / Models / About, laid out with Streamlit.

Run by `dfdet app --models DIR` (which starts `streamlit run` on this file) or by `streamlit.testing.v1.AppTest`.
It reads what to serve from its own argv (after `--`) or from DFDET_APP_MODELS / DFDET_APP_DETECTOR, and calls only
`dfdet.app.backend` for logic: no subprocess, no path taken from the user, uploads handled in a temporary directory.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import streamlit as st

from dfdet import __version__
from dfdet.app import backend as be
from dfdet.errors import DfdetError

GROUP_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9d755d", "#72b7b2"]
TSV_STATE = "dfdet_batch_tsv"  # the last batch TSV, also kept in session state (tests read it)


# --------------------------------------------------------------------------------------------------- cached loads
@st.cache_resource(ttl=30, show_spinner="Looking for models…")
def _catalog(models_dir: str | None, detector: str | None) -> be.Catalog:
    return be.find_artifacts(models_dir, detector)


@st.cache_resource(max_entries=8, show_spinner="Loading detector…")
def _loaded(path: str, fp: tuple) -> be.LoadedDetector:
    """One load per detector file and version on disk (fp = paths + mtimes of every file it loads)."""
    return be.load_for_app(path)


@st.cache_resource(max_entries=4, show_spinner="Preparing saliency…")
def _explainer(path: str, fp: tuple) -> Any:
    return be.load_explainer(path)


@st.cache_data(max_entries=32, show_spinner="Scoring…")
def _scored(path: str, fp: tuple, key: tuple, min_seconds: float, max_bytes: int, _uploads: list) -> be.BatchResult:
    return be.score_uploads(_loaded(path, fp), _uploads, min_seconds=min_seconds, max_bytes=max_bytes)


@st.cache_data(max_entries=16, show_spinner="Analysing clip…")
def _inspected(path: str, fp: tuple, name: str, digest: str, with_saliency: bool, _data: bytes) -> be.InspectData:
    explainer = _explainer(path, fp) if with_saliency else None
    return be.inspect_upload(_loaded(path, fp), name, _data, explainer=explainer)


# --------------------------------------------------------------------------------------------------- charts
LABEL_INSIDE = 0.6  # a bar longer than this carries its value label inside its end, so the label stays in the plot


def _probability_chart(v: be.FileVerdict, final_label: str) -> Any:
    """P(spoof) per member and for the final detector, each with its own threshold as a black tick.

    The legend sits below the plot and a long bar's value label inside the bar: a label right of a bar near 1 would
    run past the axis into the legend's place."""
    import altair as alt

    df = be.probability_frame(v, final_label)
    df["label"] = [be.fmt_prob(p) for p in df["p_spoof"]]
    base = alt.Chart(df).encode(y=alt.Y("detector:N", sort=None, title=None))
    bars = base.mark_bar(size=18).encode(
        x=alt.X("p_spoof:Q", scale=alt.Scale(domain=[0, 1]), title="P(spoof)"),
        color=alt.Color(
            "decision:N",
            scale=alt.Scale(domain=["bonafide", "spoof"], range=["#54a24b", "#e45756"]),
            title=None,
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=["detector", "role", alt.Tooltip("p_spoof:Q", format=".6f"), alt.Tooltip("threshold:Q", format=".6f")],
    )
    ticks = base.mark_tick(color="black", thickness=3, size=24).encode(x="threshold:Q")
    inside = (
        base.transform_filter(alt.datum.p_spoof >= LABEL_INSIDE)
        .mark_text(align="right", dx=-6, color="white", fontWeight="bold")
        .encode(x="p_spoof:Q", text="label:N")
    )
    outside = (
        base.transform_filter(alt.datum.p_spoof < LABEL_INSIDE)
        .mark_text(align="left", dx=4)
        .encode(x="p_spoof:Q", text="label:N")
    )
    return (bars + ticks + inside + outside).properties(height=34 * len(df))


def _feature_chart(d: be.InspectData, column: str) -> Any:
    import altair as alt

    df = d.feature_frame()
    names = [g[0] for g in d.groups]
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("index:Q", title="feature index"),
            y=alt.Y(f"{column}:Q", title="z-score (training scaler)" if column == "z" else "value"),
            color=alt.Color("group:N", scale=alt.Scale(domain=names, range=GROUP_COLORS[: len(names)])),
            tooltip=["index", "feature", "group", alt.Tooltip(f"{column}:Q", format=".4f")],
        )
        .properties(height=260)
    )


def _segments_chart(d: be.InspectData) -> Any:
    """Score over time: one point per window at its middle (coloured by its decision), joined by a line, on the
    waveform's time axis, with the detector's threshold as a dashed rule."""
    import altair as alt
    import pandas as pd

    df = d.segments
    x = alt.X("mid:Q", scale=alt.Scale(domain=[0, max(d.duration, 1e-3)]), title="time (s), window middle")
    y = alt.Y("score:Q", title="score (bona-fide-positive)")
    tips = [
        alt.Tooltip("start:Q", format=".2f"),
        alt.Tooltip("end:Q", format=".2f"),
        alt.Tooltip("score:Q", format=".4f"),
        alt.Tooltip("p_spoof:Q", format=".6f"),
        "decision",
    ]
    base = alt.Chart(df).encode(x=x, y=y)
    line = base.mark_line(color="#4c78a8")
    points = base.mark_circle(size=60).encode(
        color=alt.Color(
            "decision:N",
            scale=alt.Scale(domain=["bonafide", "spoof"], range=["#54a24b", "#e45756"]),
            title=None,
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=tips,
    )
    thr = pd.DataFrame({"threshold": [float(d.threshold)]})
    rule = alt.Chart(thr).mark_rule(color="black", strokeDash=[6, 4]).encode(y="threshold:Q")
    return (line + points + rule).properties(height=220)


def _waveform_figure(d: be.InspectData) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.2))
    ax.fill_between(d.wave_t, d.wave_min, d.wave_max, color="#4c78a8", linewidth=0)
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, max(d.duration, 1e-3)))
    ax.set_title(f"{d.name}: {d.duration:.2f} s at {d.sr} Hz", fontsize=9)
    fig.tight_layout()
    return fig


def _mel_figure(d: be.InspectData) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    extent = (0, d.mel_db.shape[1] * d.mel_hop_s, 0, d.mel_db.shape[0])
    im = ax.imshow(d.mel_db, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="mel band")
    ax.set_title(
        f"log-mel spectrogram ({d.mel_db.shape[0]} bands to {d.mel_fmax / 1000:.0f} kHz, dB re max)", fontsize=9
    )
    fig.colorbar(im, ax=ax, pad=0.01)
    fig.tight_layout()
    return fig


@st.cache_data(max_entries=32, show_spinner=False)
def _figure_png(key: tuple, kind: str, _d: be.InspectData) -> bytes:
    """A figure rendered once per clip (key = detector, name, content digest) as PNG bytes."""
    import io

    import matplotlib.pyplot as plt

    fig = _waveform_figure(_d) if kind == "waveform" else _mel_figure(_d)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------- sections
def _sidebar(cat: be.Catalog) -> be.DetectorOption | None:
    st.sidebar.header("Operating point")
    usable = cat.usable
    if not usable:
        return None
    labels = [o.label for o in usable]
    choice = st.sidebar.selectbox(
        "Detector file",
        labels,
        index=0,
        key="operating_point",
        help="Calibration and ensemble JSONs (and models) found in the models directory; each brings its own "
        "threshold (e.g. an in-domain vs a wild calibration).",
    )
    opt = usable[labels.index(choice)]
    thr = "?" if opt.threshold is None else f"{opt.threshold:.4g}"
    st.sidebar.markdown(
        f"**{opt.kind}**, threshold **{thr}** ({opt.policy or 'from the file'}) on the {opt.scale or 'score'} scale"
    )
    if opt.members:
        st.sidebar.caption("members: " + ", ".join(opt.members))
    st.sidebar.caption("decision: bona fide if score ≥ threshold, else spoof (score = bona-fide-positive log odds)")
    unusable = [o for o in cat.options if not o.usable]
    if unusable:
        with st.sidebar.expander(f"{len(unusable)} file(s) not usable here"):
            for o in unusable:
                st.markdown(f"- `{o.label}`: {o.note}")
    return opt


def _uploads(cfg: be.AppConfig) -> list[tuple[str, bytes]]:
    left, right = st.columns([3, 2])
    with left:
        files = st.file_uploader(
            "Upload audio (one or many)",
            type=list(be.UPLOAD_TYPES),
            accept_multiple_files=True,
            key="uploads",
            max_upload_size=cfg.max_upload_mb,
            help=f"wav, flac, ogg or mp3; at most {cfg.max_upload_mb} MB per file",
        )
    with right:
        rec = st.audio_input("…or record from the microphone", key="recording")
    out = [(f.name, f.getvalue()) for f in files or []]
    if rec is not None:
        out.append(("recording.wav", rec.getvalue()))
    return out


def _detect(opt: be.DetectorOption, batch: be.BatchResult | None) -> None:
    if batch is None:
        st.info("Upload audio files or record a clip to get a verdict.")
        st.session_state.pop(TSV_STATE, None)
        return
    for f in batch.failed:
        st.error(f"**{f.name}**: {f.error}")
    if not batch.ok:
        st.session_state.pop(TSV_STATE, None)
        return
    final_label = "ensemble" if batch.kind == "ensemble" else ("calibrated" if "calibrat" in batch.kind else "model")
    st.caption(
        f"{len(batch.ok)} file(s) scored with `{opt.label}` in {batch.seconds:.2f} s; threshold "
        f"{batch.threshold:.4g} ({batch.threshold_source}); P(spoof) = sigmoid(−score)"
    )
    for v in batch.ok:
        many = len(batch.ok) > 1
        with st.expander(f"{v.name}: {v.decision}", expanded=len(batch.ok) <= 3) if many else st.container():
            c1, c2, c3, c4 = st.columns(4)
            c1.metric("Decision", v.decision)
            c2.metric("P(spoof)", be.fmt_prob(v.p_spoof))
            c3.metric("Score", f"{v.score:.4f}", help=batch.scale)
            thr_help = f"{batch.threshold_source}; as P(spoof): {be.fmt_prob(v.p_threshold)}"
            c4.metric("Threshold", f"{v.threshold:.4g}", help=thr_help)
            st.altair_chart(_probability_chart(v, final_label), width="stretch", height=34 * (len(v.members) + 1) + 60)
            st.caption(
                "Bars: P(spoof) of each member model (its own threshold from its model file as a tick) and of the "
                f"{final_label} detector at the selected operating point."
            )
    st.subheader("Batch")
    st.dataframe(be.results_frame(batch), hide_index=True, key="batch_table")
    st.session_state[TSV_STATE] = batch.tsv
    st.download_button(
        "Download scores (TSV, as dfdet score)",
        batch.tsv,
        file_name="scores.tsv",
        mime="text/tab-separated-values",
        key="download_tsv",
    )


def _inspect(opt: be.DetectorOption, fp: tuple, uploads: list[tuple[str, bytes]], batch: be.BatchResult | None) -> None:
    if batch is None:
        st.info("Upload a file to inspect its waveform, spectrogram, features and saliency.")
        return
    names = [f.name for f in batch.files]  # upload order; the same safe names as the verdicts
    ok = [f.name for f in batch.ok]
    if not ok:
        st.info("No upload could be scored, so there is nothing to inspect (see the messages under Detect).")
        return
    name = st.selectbox("File", ok, key="inspect_file")
    data = uploads[names.index(name)][1]
    with_saliency = be.explain_available()
    try:
        d = _inspected(str(opt.path), fp, name, be.digest(data), with_saliency, data)
    except DfdetError as e:
        st.error(f"**{name}**: {e}")
        return
    key = (str(opt.path), fp, name, be.digest(data))
    st.markdown("**Waveform**")
    st.image(_figure_png(key, "waveform", d), width="stretch")
    st.markdown("**Log-mel spectrogram**")
    if d.shown_seconds < d.duration:
        st.caption(f"first {d.shown_seconds:.0f} s shown")
    st.image(_figure_png(key, "mel", d), width="stretch")
    st.markdown("**Score over time**")
    if d.segments is None:
        st.info(d.segments_note)
    else:
        st.altair_chart(_segments_chart(d), width="stretch", key="segments_chart")
        st.caption(d.segments_note)
    st.markdown(f"**The {len(d.features)}-D feature vector**, coloured by feature group")
    scale = st.radio("Scale", ["z-score (training scaler)", "raw value"], horizontal=True, key="feature_scale")
    st.altair_chart(_feature_chart(d, "z" if scale.startswith("z") else "value"), width="stretch")
    st.markdown("**Saliency of this clip per feature group**")
    if d.saliency is None:
        st.info(d.saliency_note)
        return
    import pandas as pd

    sal = pd.DataFrame(d.saliency)
    sal.index.name = "group"
    for col, method in zip(st.columns(len(sal.columns)), sal.columns, strict=True):
        with col:
            st.caption(method)
            st.bar_chart(sal[[method]], horizontal=True, sort=False, height=220)
    st.dataframe(sal, key="saliency_table")
    st.caption(d.saliency_note)


def _models(cat: be.Catalog) -> None:

    st.subheader("Operating points")
    st.dataframe(
        be.display_frame(
            [
                {
                    "file": o.label,
                    "kind": o.kind,
                    "threshold": o.threshold,
                    "policy": o.policy,
                    "scale": o.scale,
                    "members": ", ".join(o.members),
                    "usable": o.usable,
                    "note": o.note,
                }
                for o in cat.options
            ]
        ),
        hide_index=True,
    )
    if cat.problems:
        with st.expander(f"{len(cat.problems)} file(s) could not be read"):
            for p in cat.problems:
                st.markdown(f"- {p}")
    if cat.models:
        st.subheader("Models")
        st.dataframe(be.display_frame([be.model_facts(m) for m in cat.models]), hide_index=True)
        st.caption(
            "val_eer / val_auc: on the validation data that chose the epoch and threshold (--val or --val-split); "
            "test_eer: on the --test data, scored once after training. 'not measured' where the run had no such data."
        )
        for card in cat.models:
            with st.expander(f"{card.label}: training curves and gradient norms"):
                if card.note:
                    st.warning(card.note)
                epochs, steps = be.history_frames(card.history)
                if epochs.empty and steps.empty:
                    st.info("no history file beside this model (MODEL.history.jsonl)")
                    continue
                loss_cols = [c for c in ("train_loss", "val_loss") if c in epochs]
                val_cols = [c for c in ("val_eer", "val_auc", "train_acc", "val_acc") if c in epochs]
                if loss_cols:
                    st.caption("loss per epoch")
                    st.line_chart(epochs[loss_cols])
                if val_cols:
                    st.caption("accuracy / validation EER and AUC per epoch")
                    st.line_chart(epochs[val_cols])
                if "grad_norm" in steps:
                    st.caption("gradient norm per step (global and per layer)")
                    st.line_chart(steps[[c for c in steps.columns if c.startswith("grad_norm")]])
    if cat.ensembles:
        st.subheader("Ensembles: weights and flips")
        for item in cat.ensembles:
            doc = item.doc
            thr = doc.get("threshold") or {}
            value = thr.get("value")
            value = f"{value:.4g}" if isinstance(value, (int, float)) else "?"
            st.markdown(
                f"`{item.label}`: method **{doc.get('method')}**, threshold {thr.get('policy')} = {value} on the "
                f"{thr.get('scale')}"
            )
            st.dataframe(be.display_frame(be.ensemble_rows(doc)), hide_index=True)
            flipped = doc.get("flipped_members") or []
            if flipped:
                st.warning(f"flipped (AUC < 0.5 when fitted): {', '.join(flipped)}")
    if cat.calibrations:
        st.subheader("Calibrations")
        st.dataframe(be.display_frame([be.calibration_facts(c) for c in cat.calibrations]), hide_index=True)
    if cat.evaluations:
        st.subheader("Evaluations")
        for item in cat.evaluations:
            st.markdown(f"`{item.label}`")
            st.dataframe(be.display_frame(be.evaluation_rows(item.doc)), hide_index=True)


def _about(cat: be.Catalog, opt: be.DetectorOption | None) -> None:
    st.markdown(
        f"""
**dfdet {__version__}** — audio deepfake (spoofed speech) detection from trained artifacts.

- Each upload is decoded and featurized by dfdet's own library (the same calls as `dfdet score`), scored by every
  member model, fused / calibrated as the selected file says, and decided at **that file's** threshold.
- `score` is bona-fide-positive (higher = more likely genuine; natural-log odds, an LLR after calibration);
  P(spoof) = sigmoid(−score). The TSV download is what `dfdet score` writes for the same files (its `path` column
  holds the uploaded file names).
- Uploads are processed in a private temporary directory that is deleted afterwards; nothing else is written.
- A verdict is evidence, not proof: detectors trained on one corpus can fail on another (see Evaluations).
"""
    )
    st.caption(f"serving {len(cat.models)} model(s), {len(cat.usable)} usable operating point(s)")
    if opt is not None:
        cards = [c for c in cat.models if opt.kind != "model" or c.path == opt.path]
        if cards:
            st.markdown(f"**Provenance of `{opt.label}`'s models**")
            st.table(be.provenance_table(cards))
            with st.expander("Full provenance records (JSON)"):
                st.json([{"model": c.label, **be.provenance_lines(c.meta)} for c in cards], expanded=False)


# --------------------------------------------------------------------------------------------------- main
def _own_argv() -> list[str]:
    """The arguments after `streamlit run PAGE --` (streamlit sets sys.argv = [PAGE, *args]); none under AppTest,
    where sys.argv belongs to the test runner and the environment variables configure the page."""
    try:
        mine = os.path.realpath(sys.argv[0]) == os.path.realpath(__file__)
    except (IndexError, NameError, OSError):
        mine = False
    return sys.argv[1:] if mine else []


def main(argv: list[str] | None = None) -> None:
    st.set_page_config(page_title="dfdet: deepfake audio detector", layout="wide")
    st.title("dfdet: is this speech genuine?")
    try:
        cfg = be.parse_page_args(_own_argv() if argv is None else argv, os.environ)
        cat = _catalog(str(cfg.models_dir) if cfg.models_dir else None, str(cfg.detector) if cfg.detector else None)
    except DfdetError as e:
        st.error(f"dfdet app: {e}")
        st.stop()
    for p in cat.problems:
        st.sidebar.warning(p)
    opt = _sidebar(cat)
    if opt is None:
        st.error(
            "No usable detector found (dfdet app: a model .pt, a calibration JSON naming its detector, or an "
            "ensemble JSON of model members is needed; train one with `dfdet train` or point --models elsewhere)."
        )
        _models(cat)
        st.stop()
    fp = be.fingerprint(opt.path)
    try:
        loaded = _loaded(str(opt.path), fp)
    except DfdetError as e:
        st.error(f"cannot load {opt.label}: {e}")
        st.stop()
    for synthetic, line in be.training_domain(loaded, opt.label):  # a banner when it learnt from synthetic audio
        if synthetic:
            st.warning(line, icon="⚠️")
        else:
            st.caption(line)
    uploads = _uploads(cfg)
    batch = None
    if uploads:
        key = tuple((n, be.digest(b)) for n, b in uploads)
        batch = _scored(str(opt.path), fp, key, cfg.min_seconds, cfg.max_bytes, uploads)
    detect, inspect, models, about = st.tabs(["Detect", "Inspect", "Models", "About"])
    with detect:
        _detect(opt, batch)
    with inspect:
        _inspect(opt, fp, uploads, batch)
    with models:
        _models(cat)
    with about:
        _about(cat, opt)


if __name__ == "__main__":
    main()
