"""Report figures: matplotlib (Agg, no pyplot state) rendered to PNG bytes, readable at a glance.

Every figure has a title and labelled axes; colours come from one fixed palette keyed by optimizer (and
`ensemble`), line styles by training protocol, so the same model looks the same in every figure of a report.
PNGs carry no timestamp, so the same inputs give byte-identical figures.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

PALETTE: dict[str, str] = {
    "sgd": "#1f77b4",
    "adam": "#ff7f0e",
    "adamw": "#2ca02c",
    "rmsprop": "#d62728",
    "sam": "#9467bd",
    "ensemble": "#222222",
    "adversarial": "#8c564b",
    "plain": "#7f7f7f",
    "logistic": "#e377c2",
    "bonafide": "#2b83ba",
    "spoof": "#d7191c",
}
EXTRA_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#393b79", "#637939", "#7b4173", "#843c39")
PROTOCOL_STYLES: dict[str, str] = {"default": "-", "seed": "--"}
DPI = 100


def colour(key: str | None) -> str:
    """The palette colour of an optimizer / `ensemble` / class; other keys get a stable colour of their own."""
    k = (key or "").lower()
    if k in PALETTE:
        return PALETTE[k]
    return EXTRA_COLOURS[zlib.crc32(k.encode()) % len(EXTRA_COLOURS)]


def linestyle(protocol: str | None) -> str:
    return PROTOCOL_STYLES.get((protocol or "default").lower(), ":")


def _figure(
    width: float,
    height: float,
    nrows: int = 1,
    ncols: int = 1,
    margins: tuple[float, float, float, float] = (0.8, 0.25, 0.6, 0.65),
    wspace: float = 0.28,
    hspace: float = 0.4,
):
    """A Figure with fixed margins in inches (left, right, bottom, top); no layout engine, which would cost about
    half the drawing time of a report."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    left, right, bottom, top = margins
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def to_png(fig: Any, tight: bool = False) -> bytes:
    """PNG bytes of a figure (Agg canvas, no timestamp metadata); `tight` grows the canvas to hold a legend placed
    outside the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    extra = {"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, **extra)
    return buf.getvalue()


def _handles(axes: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """Legend entries of all `axes`, one per label (first seen)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)


def _legend_outside(anchor: Any, axes: Sequence[Any] | None = None) -> bool:
    """One legend for `axes` (default: `anchor` alone) to the right of the `anchor` axes, where it covers no data
    (draw the figure with to_png(tight=True)). False when there is nothing to label."""
    handles, labels = _handles(axes if axes is not None else [anchor])
    if not handles:
        return False
    anchor.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return True


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize="small", color="#666")


def smooth(values: Sequence[float], window: int | None = None) -> np.ndarray:
    """Centred moving average (window ~ 2 % of the series, at least 1) ignoring NaN; same length as the input."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    w = int(window or max(1, round(v.size / 50)))
    if w <= 1:
        return v
    ok = np.isfinite(v)
    kernel = np.ones(w)
    num = np.convolve(np.where(ok, v, 0.0), kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)


# --------------------------------------------------------------------------------------------------- training
def training_curves(runs: Sequence[dict[str, Any]], title: str = "Training per epoch") -> bytes:
    """2x2 panels: training loss, validation AUC, validation EER (%) and learning rate per epoch.

    runs: dicts with `label`, `optimizer`, `protocol`, `epochs` (history records of type "epoch").
    """
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure(11, 7.5, 2, 2, margins=(0.8, 0.25, 0.55, 0.6), wspace=0.22, hspace=0.35)
    panels = [
        (ax[0, 0], "train_loss", "Training loss", "loss (training objective)", 1.0, False),
        (ax[0, 1], "val_auc", "Validation ROC-AUC", "AUC (bona fide vs spoof)", 1.0, False),
        (ax[1, 0], "val_eer", "Validation EER", "EER (%)", 100.0, False),
        (ax[1, 1], "lr", "Learning rate", "learning rate", 1.0, True),
    ]
    for a, key, name, ylabel, scale, logy in panels:
        drawn = False
        for r in runs:
            ep = [e for e in r["epochs"] if e.get(key) is not None]
            if not ep:
                continue
            x = [e["epoch"] for e in ep]
            y = [scale * float(e[key]) for e in ep]
            a.plot(x, y, linestyle(r.get("protocol")), color=colour(r.get("optimizer")), label=r["label"], lw=1.5)
            drawn = True
        a.set_title(name)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("epoch")
        a.set_ylabel(ylabel)
        a.grid(alpha=0.3)
        if logy and drawn:
            a.set_yscale("log")
        if not drawn:
            _empty(a, "no data (e.g. no validation split under --protocol seed)")
    _legend_outside(ax[0, 1], list(ax.ravel()))
    fig.suptitle(title, fontweight="bold")
    return to_png(fig, tight=True)


def grad_norm_figure(runs: Sequence[dict[str, Any]], title: str = "Global gradient norm per step") -> bytes:
    """Gradient-norm evolution per step (moving average, raw values faint), log scale, one panel per protocol.

    runs: dicts with `label`, `optimizer`, `protocol`, `steps` (history records of type "step").
    """
    from matplotlib.ticker import MaxNLocator

    protocols = sorted({r.get("protocol") or "default" for r in runs}, key=lambda p: (p != "default", p))
    fig, ax = _figure(5.5 * len(protocols) + 1, 4.2, 1, len(protocols), margins=(1.1, 0.25, 0.6, 0.65), wspace=0.35)
    for a, proto in zip(ax[0], protocols, strict=True):
        for r in runs:
            if (r.get("protocol") or "default") != proto:
                continue
            st = [s for s in r["steps"] if s.get("grad_norm") is not None]
            if not st:
                continue
            x = np.array([s["step"] for s in st])
            y = np.array([float(s["grad_norm"]) for s in st])
            y = np.where(y > 0, y, np.nan)
            c = colour(r.get("optimizer"))
            if len(y) > 20:
                a.plot(x, y, color=c, alpha=0.15, lw=0.6)
            a.plot(x, smooth(y), linestyle(proto), color=c, label=r["label"], lw=1.5)
        a.set_yscale("log")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_title(f"{proto} protocol")
        a.set_xlabel("optimizer step")
        a.set_ylabel("global L2 gradient norm (log scale)")
        a.grid(alpha=0.3, which="both")
    _legend_outside(ax[0, -1], list(ax[0]))
    fig.suptitle(f"{title} (smoothed; raw values faint)", fontweight="bold")
    return to_png(fig, tight=True)


def landscape_figure(
    items: Sequence[dict[str, Any]], title: str = "Loss landscape around the trained weights"
) -> bytes:
    """Loss along the first filter-normalised random direction, and along the initial-to-final interpolation.

    items: dicts with `label`, `optimizer`, `protocol`, `doc` (landscape JSON).
    """
    fig, ax = _figure(11, 4.2, 1, 2)
    d_ax, i_ax = ax[0]
    for it in items:
        doc, c, ls = it["doc"], colour(it.get("optimizer")), linestyle(it.get("protocol"))
        dirs = doc.get("directions") or {}
        curves = dirs.get("curves") or []
        if curves and dirs.get("alphas"):
            d_ax.plot(dirs["alphas"], curves[0]["loss"], ls, color=c, label=it["label"], lw=1.5)
        interp = doc.get("interpolation") or {}
        if interp.get("t"):
            i_ax.plot(interp["t"], interp["loss"], ls, color=c, label=it["label"], lw=1.5)
    d_ax.set_title("Random direction (filter-normalised)")
    d_ax.set_xlabel("step alpha along direction 0")
    d_ax.set_ylabel("training loss")
    i_ax.set_title("Linear interpolation initial -> final")
    i_ax.set_xlabel("t (0 = initial, 1 = trained weights)")
    i_ax.set_ylabel("training loss")
    for a in (d_ax, i_ax):
        a.grid(alpha=0.3)
        if not a.lines:
            _empty(a, "not measured")
    _legend_outside(i_ax, [d_ax, i_ax])
    fig.suptitle(title, fontweight="bold")
    return to_png(fig, tight=True)


# --------------------------------------------------------------------------------------------------- evaluation
def roc_det_figure(curves: Sequence[dict[str, Any]], title: str) -> bytes:
    """ROC and DET curves (sklearn displays); bona fide is the positive class, scores bona-fide-positive.

    curves: dicts with `label`, `colour`, `style`, `scores`, `labels` (0 bona fide / 1 spoof).
    """
    from sklearn.metrics import DetCurveDisplay, RocCurveDisplay

    # one shared legend below both panels: inside, it would cover the curves of a poor detector
    extra = 0.22 * math.ceil(len(curves) / 2) + 0.3
    fig, ax = _figure(11, 4.8 + extra, 1, 2, margins=(0.8, 0.25, 0.6 + extra, 0.65))
    roc_ax, det_ax = ax[0]
    for c in curves:
        y_bona = (np.asarray(c["labels"]) == 0).astype(int)
        s = np.asarray(c["scores"], dtype=np.float64)
        kw = {"color": c["colour"], "linestyle": c.get("style", "-"), "lw": 1.5}
        try:  # scikit-learn >= 1.7 takes line properties as curve_kwargs
            RocCurveDisplay.from_predictions(y_bona, s, ax=roc_ax, name=c["label"], pos_label=1, curve_kwargs=kw)
        except TypeError:
            RocCurveDisplay.from_predictions(y_bona, s, ax=roc_ax, name=c["label"], pos_label=1, **kw)
        DetCurveDisplay.from_predictions(y_bona, s, ax=det_ax, name=c["label"], pos_label=1, **kw)
    roc_ax.plot([0, 1], [0, 1], ":", color="#999", lw=1)
    roc_ax.set_title("ROC")
    roc_ax.set_xlabel("spoof accepted as bona fide (false alarm rate)")
    roc_ax.set_ylabel("bona fide accepted (true positive rate)")
    det_ax.set_title("DET (normal deviate scale)")
    det_ax.set_xlabel("spoof accepted (FAR)")
    det_ax.set_ylabel("bona fide rejected (FRR)")
    for a in (roc_ax, det_ax):
        a.grid(alpha=0.3)
        leg = a.get_legend()
        if leg is not None:
            leg.remove()
    handles, labels = roc_ax.get_legend_handles_labels()
    keep = [i for i, lab in enumerate(labels) if "chance" not in lab.lower()]
    handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize="small", frameon=False)
    fig.suptitle(title, fontweight="bold")
    return to_png(fig)


def histograms_figure(items: Sequence[dict[str, Any]], title: str = "Score distributions per class") -> bytes:
    """One panel per score file: bona fide and spoof score histograms and the decision threshold; one legend for all
    panels above them (counts and threshold value in each panel's title), so no legend covers a bar.

    items: dicts with `label`, `scores`, `labels`, `threshold` (or None), `threshold_source`.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(items)
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    # a fixed grid layout: constrained layout costs seconds on a dozen panels
    height = 3.6 * nrows + 1.3
    fig, ax = _figure(4.4 * ncols + 0.4, height, nrows, ncols, margins=(0.6, 0.15, 0.6, 1.3), wspace=0.32, hspace=0.7)
    flat = ax.ravel()
    for a, it in zip(flat, items, strict=False):
        s = np.asarray(it["scores"], dtype=np.float64)
        y = np.asarray(it["labels"])
        lo, hi = np.percentile(s, [0.5, 99.5]) if s.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        bins = np.linspace(lo, hi, 40)
        for cls, name in ((0, "bonafide"), (1, "spoof")):
            part = np.clip(s[y == cls], lo, hi)
            if part.size:  # stepfilled: one polygon per class instead of a patch per bin (much faster to draw)
                a.hist(part, bins=bins, histtype="stepfilled", alpha=0.5, color=colour(name))
        thr = it.get("threshold")
        counts = f"{int((y == 0).sum())} bona fide, {int((y == 1).sum())} spoof"
        if thr is not None and np.isfinite(thr):
            a.axvline(thr, color="k", ls="--", lw=1.2)
            counts += f"; threshold {thr:.3g}"
        a.set_title(f"{it['label']}\n{counts}", fontsize="small")
        a.set_xlabel("score (bona-fide-positive log odds)")
        a.set_ylabel("utterances")
        a.grid(alpha=0.3)
    for a in flat[n:]:
        a.set_visible(False)
    handles = [
        Patch(color=colour("bonafide"), alpha=0.5, label="bona fide"),
        Patch(color=colour("spoof"), alpha=0.5, label="spoof"),
        Line2D([], [], color="k", ls="--", lw=1.2, label="decision threshold"),
    ]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.35 / height), ncol=3, frameon=False)
    fig.suptitle(title, fontweight="bold")
    return to_png(fig)


# --------------------------------------------------------------------------------------------------- calibration
def reliability_figure(curves: Sequence[dict[str, Any]], title: str = "Reliability diagram") -> bytes:
    """Observed fraction of spoof against mean predicted P(spoof) per bin (marker area ~ count), with the diagonal.

    curves: dicts with `label`, `colour`, `bins` (dicts with mean_p_spoof, fraction_spoof, count).
    """
    fig, ax = _figure(6.2, 5.2, margins=(0.8, 0.25, 0.6, 0.4))
    a = ax[0, 0]
    a.plot([0, 1], [0, 1], ":", color="#999", lw=1, label="perfectly calibrated")
    for c in curves:
        b = [x for x in c["bins"] if x.get("count") and x.get("mean_p_spoof") is not None]
        if not b:
            continue
        xs = [x["mean_p_spoof"] for x in b]
        ys = [x["fraction_spoof"] for x in b]
        counts = np.array([x["count"] for x in b], dtype=float)
        a.plot(xs, ys, c.get("style", "-"), color=c["colour"], label=c["label"], lw=1.5)
        a.scatter(xs, ys, s=10 + 120 * counts / counts.max(), color=c["colour"], alpha=0.6)
    a.set_xlim(0, 1)
    a.set_ylim(0, 1)
    a.set_xlabel("mean predicted P(spoof) in bin")
    a.set_ylabel("observed fraction of spoof in bin")
    a.set_title(title)
    a.grid(alpha=0.3)
    _legend_outside(a)
    return to_png(fig, tight=True)


def bars_figure(
    groups: Sequence[str],
    series: Sequence[dict[str, Any]],
    title: str,
    ylabel: str,
    xlabel: str = "",
    hline: float | None = None,
    hline_label: str = "",
    hatches: Sequence[Sequence[bool]] | None = None,
) -> bytes:
    """Grouped bars: one group per `groups` entry, one bar per series (dicts with `label`, `colour`, `values`)."""
    n = max(1, len(series))
    width = 0.8 / n
    rotate = len(groups) > 4
    longest = max((len(str(g)) for g in groups), default=1)
    bottom = 0.6 + (0.07 * min(longest, 30) if rotate else 0.0)
    fig, ax = _figure(max(6.0, 0.6 * len(groups) * max(1, n / 2) + 2), 4.0 + bottom, margins=(0.8, 0.25, bottom, 0.7))
    a = ax[0, 0]
    x = np.arange(len(groups))
    for i, s in enumerate(series):
        vals = np.array([np.nan if v is None else float(v) for v in s["values"]])
        bars = a.bar(x + (i - (n - 1) / 2) * width, vals, width, color=s["colour"], label=s["label"])
        if hatches is not None:
            for bar, h in zip(bars, hatches[i], strict=False):
                if h:
                    bar.set_hatch("//")
                    bar.set_edgecolor("k")
    if hline is not None:
        a.axhline(hline, color="k", ls=":", lw=1, label=hline_label or None)
    a.set_xticks(x, list(groups), rotation=30 if rotate else 0, ha="right" if rotate else "center")
    a.set_ylabel(ylabel)
    a.set_xlabel(xlabel)
    a.set_title(_wrap(title))
    a.grid(alpha=0.3, axis="y")
    _legend_outside(a)
    return to_png(fig, tight=True)


def _wrap(title: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title


def hbar_figure(
    labels: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str],
    title: str,
    xlabel: str,
    xlim: tuple[float, float] | None = None,
) -> bytes:
    """Horizontal bars, first item on top (top features, shortcut scan)."""
    left = 0.3 + 0.075 * max((len(str(lab)) for lab in labels), default=4)
    fig, ax = _figure(7.5 + left, 0.32 * len(labels) + 1.8, margins=(left, 0.3, 0.6, 0.7))
    a = ax[0, 0]
    y = np.arange(len(labels))[::-1]
    a.barh(y, values, color=list(colours))
    a.set_yticks(y, list(labels), fontsize="small")
    if xlim is not None:
        a.set_xlim(*xlim)
    a.set_xlabel(xlabel)
    a.set_title(_wrap(title))
    a.grid(alpha=0.3, axis="x")
    return to_png(fig)


# --------------------------------------------------------------------------------------------------- robustness
def attack_figure(sweeps: Sequence[dict[str, Any]], title: str = "Feature-space attacks") -> bytes:
    """Accuracy and EER against epsilon per model and method (FGSM solid, PGD dashed).

    sweeps: dicts with `label`, `colour`, `method`, `eps`, `accuracy`, `eer`.
    """
    fig, ax = _figure(11, 4.4, 1, 2)
    acc_ax, eer_ax = ax[0]
    for s in sweeps:
        style = "--" if str(s.get("method")).lower() == "pgd" else "-"
        marker = "s" if style == "--" else "o"
        lab = f"{s['label']} {str(s.get('method', '')).upper()}"
        eps = np.asarray(s["eps"], dtype=float)
        for a, key, scale in ((acc_ax, "accuracy", 1.0), (eer_ax, "eer", 100.0)):
            vals = s.get(key)
            if vals is None or all(v is None for v in vals):
                continue
            v = np.array([np.nan if x is None else scale * float(x) for x in vals])
            a.plot(eps, v, style, marker=marker, ms=4, color=s["colour"], label=lab, lw=1.5)
    acc_ax.set_title("Accuracy at the model's threshold")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(-0.02, 1.02)
    eer_ax.set_title("EER under attack")
    eer_ax.set_ylabel("EER (%)")
    for a in (acc_ax, eer_ax):
        a.set_xlabel("epsilon (training standard deviations, L-inf)")
        a.grid(alpha=0.3)
        if not a.lines:
            _empty(a, "not measured")
    _legend_outside(eer_ax, [acc_ax, eer_ax])
    fig.suptitle(title, fontweight="bold")
    return to_png(fig, tight=True)


def segments_figure(files: Sequence[dict[str, Any]], title: str = "Score over time") -> bytes:
    """One panel per file: each window's score at its middle (green bona fide, red spoof) joined by a line, the
    band holding the decision threshold (`threshold`: (low, high) or None) and the lowest-scoring window shaded."""
    n = max(1, len(files))
    fig, ax = _figure(9.0, 1.0 + 2.0 * n, nrows=n, margins=(0.8, 0.25, 0.6, 0.65), hspace=0.6)
    for a, f in zip(ax[:, 0], files, strict=False):
        start, end, score = (np.asarray(f[k], dtype=np.float64) for k in ("start", "end", "score"))
        mid, spoof = (start + end) / 2, np.asarray(f["decision"]) == 1
        a.plot(mid, score, color="#4c78a8", lw=1.2, zorder=1)
        a.scatter(mid[~spoof], score[~spoof], s=14, color="#54a24b", label="bonafide", zorder=2)
        a.scatter(mid[spoof], score[spoof], s=14, color="#e45756", label="spoof", zorder=2)
        if f.get("threshold") is not None:
            lo, hi = f["threshold"]
            a.axhspan(lo, hi, color="#888", alpha=0.25, lw=0, label="threshold lies here")
        k = int(np.argmin(score))
        a.axvspan(start[k], end[k], color="#e45756", alpha=0.12, lw=0, label="lowest window")
        a.set_xlim(0, max(float(end.max()), 1e-3))
        a.set_ylabel("score")
        a.set_title(str(f["utt_id"]), fontsize="small")
        a.grid(alpha=0.3)
    ax[-1, 0].set_xlabel("time (s), window middle")
    fig.suptitle(_wrap(title))
    _legend_outside(ax[0, 0])
    return to_png(fig, tight=True)


def time_frequency_figure(panels: Sequence[dict[str, Any]], bands: Sequence[str], title: str) -> bytes:
    """One heat map per panel (`label`, `map` [time bins, bands] of attribution shares): relative time across,
    filterbank band (low to high frequency) up, so the classes can be compared side by side."""
    n = max(1, len(panels))
    fig, ax = _figure(1.0 + 3.6 * n, 4.4, ncols=n, margins=(0.9, 0.9, 0.7, 0.7), wspace=0.35)
    top = max((float(np.max(p["map"])) for p in panels), default=1.0) or 1.0
    im = None
    for a, p in zip(ax[0], panels, strict=False):
        grid = np.asarray(p["map"], dtype=np.float64).T  # [bands, time]
        im = a.imshow(grid, origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=top,
                      extent=(0.0, 1.0, -0.5, len(bands) - 0.5))  # fmt: skip
        ticks = list(range(0, len(bands), max(1, len(bands) // 5)))
        a.set_yticks(ticks, [str(bands[i]) for i in ticks])
        a.set_xlabel("relative time in the utterance")
        a.set_title(str(p["label"]), fontsize="small")
    ax[0, 0].set_ylabel("filterbank band (centre)")
    if im is not None:
        fig.colorbar(im, ax=list(ax[0]), fraction=0.04, pad=0.02, label="share of |saliency|")
    fig.suptitle(_wrap(title, 90))
    return to_png(fig)
