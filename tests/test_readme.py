"""The README's tour runs as written: its bash block(s), on a small demo tree with the layout `make demo` writes.

Rule: a tour line whose comment says "not run by the test" (the web app, a server that does not terminate) is
skipped; every other line must exit 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfdet.cli import cli
from dfdet.democorpus import make_demo_corpus

README = Path(__file__).resolve().parents[1] / "README.md"
TOUR = "## A tour in pipelines"
SKIP = "not run by the test"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def tour_commands(text: str) -> list[str]:
    """The command lines of the fenced bash blocks under the tour heading (up to the next `## ` heading)."""
    section = text.split(TOUR, 1)[1].split("\n## ", 1)[0]
    lines, inside = [], False
    for line in section.splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip() == "```bash"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#") and SKIP not in line:
            lines.append(line)
    return lines


def test_tour_extraction_keeps_commands_and_skips_the_server() -> None:
    cmds = tour_commands(README.read_text(encoding="utf-8"))
    assert len(cmds) >= 15 and all(c.startswith(("dfdet ", "find ", "mkdir ")) for c in cmds)
    assert not any(c.startswith("dfdet app") for c in cmds)
    assert not any("ASVspoof2019" in c for c in cmds)  # real-corpus examples live outside the bash block


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory, runner_module):
    """demo/ as `make demo` lays it out (tiny corpus, short training): what the tour reads, made by the same
    dfdet commands as the Makefile's rules."""
    root = tmp_path_factory.mktemp("readme")
    d = root / "demo"
    make_demo_corpus(d / "corpus", n_per_class=10, n_wild_per_class=8, seed=5, seconds=(0.6, 0.9))
    steps = [
        ["featurize", "--labels", d / "corpus/lab.csv", "-j", "1", "-o", d / "feats/lab.h5"],
        ["featurize", "--labels", d / "corpus/wild.csv", "-j", "1", "-o", d / "feats/wild.h5"],
        ["split", d / "feats/lab.h5", "--parts", "train=0.6,val=0.2,test=0.2", "--group-by", "speaker"]
        + ["--out-pattern", str(d / "split/lab_{part}.h5")],
        ["split", d / "feats/wild.h5", "--parts", "cal=0.4,test=0.6", "--group-by", "speaker"]
        + ["--out-pattern", str(d / "split/wild_{part}.h5")],
    ]
    for opt in ("sgd", "adamw"):
        steps.append(
            ["train", d / "split/lab_train.h5", "--val", d / "split/lab_val.h5", "--optimizer", opt]
            + ["--batch-size", "8", "--epochs", "2", "-o", d / f"models/{opt}.pt"]
        )
    for args in steps:
        r = runner_module.invoke(cli, ["-q", "--seed", "42", *map(str, args)], catch_exceptions=False)
        assert r.exit_code == 0, (args, r.stderr[-2000:])
    return root


@pytest.fixture(scope="module")
def runner_module():
    from click.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def test_every_tour_command_runs_after_the_demo(demo_tree: Path) -> None:
    bindir = demo_tree / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "dfdet"  # `dfdet` on PATH, as after `source .venv/bin/activate`, importing this checkout
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m dfdet "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(README.parent), env.get("PYTHONPATH", "")])
    for cmd in tour_commands(README.read_text(encoding="utf-8")):
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd], cwd=demo_tree, env=env, capture_output=True, text=True
        )
        assert r.returncode == 0, f"tour command failed ({r.returncode}): {cmd}\n{r.stderr[-3000:]}"
    assert (demo_tree / "tour/report/index.html").stat().st_size > 0
    assert (demo_tree / "tour/cm_scores.tsv").stat().st_size > 0
