"""Build hook (the rest of the build is declared in pyproject.toml): the shipped detectors, models/NAME/ folders
with a detector.json, go into the wheel as package data under dfdet/_shipped/NAME/, so an installed dfdet finds
them outside the checkout (dfdet.shipped looks in the checkout's models/ first)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithModels(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's models/ directly
            return
        for card in sorted((ROOT / "models").glob("*/detector.json")):
            dest = Path(self.build_lib, "dfdet", "_shipped", card.parent.name)
            self.mkpath(str(dest))
            for f in sorted(card.parent.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    self.copy_file(str(f), str(dest / f.name))


setup(cmdclass={"build_py": BuildPyWithModels})
