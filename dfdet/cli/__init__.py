"""The `dfdet` root command: global options, lazy subcommands, one-line errors and exit codes.

Subcommand modules live in `dfdet.cli.<name>` and are imported only when used, so `dfdet --help` never imports
torch or librosa.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from dfdet import __version__
from dfdet.console import Settings
from dfdet.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PARTIAL, DfdetError, PartialSuccess

# command name -> (module under dfdet.cli, function name). A command is listed once its module exists.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-corpus": ("demo_corpus", "demo_corpus"),
    "featurize": ("featurize", "featurize"),
    "info": ("info", "info"),
    "merge": ("merge", "merge"),
    "split": ("split", "split"),
    "train": ("train", "train"),
    "crossval": ("crossval", "crossval"),
    "landscape": ("landscape", "landscape"),
    "evaluate": ("evaluate", "evaluate"),
    "score": ("score", "score"),
    "models": ("models", "models"),
    "export": ("export", "export"),
    "calibrate": ("calibrate", "calibrate"),
    "ensemble": ("ensemble", "ensemble"),
    "explain": ("explain", "explain"),
    "attack": ("attack", "attack"),
    "report": ("report", "report"),
    "app": ("app", "app"),
}


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(f"dfdet.cli.{module}") is not None


class DfdetGroup(click.Group):
    """Lazy subcommands plus the error policy of DESIGN.md."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"dfdet.cli.{module}"), attr)

    def invoke(self, ctx: click.Context):
        settings = ctx.ensure_object(Settings)
        from dfdet import interrupts

        try:
            result = super().invoke(ctx)
            interrupts.check()  # a stop whose KeyboardInterrupt was swallowed still ends the run as interrupted
            return result
        except PartialSuccess as e:
            sub = ctx.invoked_subcommand or "?"
            click.echo(f"dfdet {sub}: {e} (listed above)", err=True)
            ctx.exit(EXIT_PARTIAL)
        except DfdetError as e:
            sub = ctx.invoked_subcommand or "?"
            if settings.debug:
                traceback.print_exc()
            click.echo(f"dfdet {sub}: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            sub = ctx.invoked_subcommand or "?"
            click.echo(f"dfdet {sub}: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # Downstream closed the pipe (e.g. `| head`): not an error of ours.
            sys.stderr.close()
            ctx.exit(0)
        except Exception as e:  # noqa: BLE001 - the policy is one line unless --debug
            sub = ctx.invoked_subcommand or "?"
            if settings.debug:
                traceback.print_exc()
            click.echo(f"dfdet {sub}: error: {type(e).__name__}: {e} (rerun with --debug for a traceback)", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=DfdetGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="dfdet")
@click.option("-v", "--verbose", count=True, help="Echo the resolved configuration and more detail (stderr).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings on stderr; no progress bars.")
@click.option("--debug", is_flag=True, help="Show a traceback with errors.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seeds python, numpy and torch in one place.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool, seed: int) -> None:
    """dfdet: audio deepfake (spoofed speech) detection tools that chain like Unix commands.

    Scores are bona-fide-positive (higher = more likely genuine), as in the ASVspoof evaluation package.
    stdout carries data only; messages and progress go to stderr. Exit codes: 0 ok, 1 error, 2 usage,
    3 partial success under --skip-bad, 4 a worker process died (out of memory?), 130 interrupted.
    """
    ctx.obj = Settings(verbose=verbose, quiet=quiet, debug=debug, seed=seed)
    from dfdet.seeding import seed_everything

    seed_everything(seed)
    # A `kill` should clean up temp files like Ctrl-C does, so outputs are never half-written.
    from dfdet import interrupts

    interrupts.install()


def main() -> None:
    cli(prog_name="dfdet")
