import subprocess
import sys

import click

from dfdet import __version__
from dfdet.cli import DfdetGroup, cli
from dfdet.errors import DfdetError, PartialSuccess


def test_version(runner):
    r = runner.invoke(cli, ["--version"])
    assert r.exit_code == 0
    assert __version__ in r.stdout


def test_help_does_not_import_torch_or_librosa():
    code = (
        "import sys; from dfdet.cli import main; sys.argv=['dfdet','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy=[m for m in ('torch','librosa','sklearn','h5py') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in r.stderr
    assert "Usage" in r.stdout


def _group_with(cmd):
    @click.group(cls=DfdetGroup)
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def root(ctx, debug):
        from dfdet.console import Settings

        ctx.obj = Settings(debug=debug)

    root.add_command(cmd)
    return root


def test_error_policy_exit_codes(runner):
    @click.command("boom")
    @click.argument("kind")
    def boom(kind):
        if kind == "dfdet":
            raise DfdetError("bad thing in x.wav", "fix it")
        if kind == "partial":
            raise PartialSuccess(2)
        if kind == "interrupt":
            raise KeyboardInterrupt
        raise ValueError("unexpected")

    class G(DfdetGroup):
        def get_command(self, ctx, name):
            return boom if name == "boom" else None

        def list_commands(self, ctx):
            return ["boom"]

    @click.group(cls=G)
    def root():
        pass

    r = runner.invoke(root, ["boom", "dfdet"])
    assert r.exit_code == 1
    assert r.stderr.strip() == "dfdet boom: error: bad thing in x.wav (fix it)"
    assert r.stdout == ""
    assert runner.invoke(root, ["boom", "partial"]).exit_code == 3
    assert runner.invoke(root, ["boom", "interrupt"]).exit_code == 130
    r = runner.invoke(root, ["boom", "other"])
    assert r.exit_code == 1 and "ValueError: unexpected" in r.stderr and "Traceback" not in r.stderr
    assert runner.invoke(root, ["boom"]).exit_code == 2  # missing argument is a usage error
