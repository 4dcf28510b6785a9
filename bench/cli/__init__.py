"""Layer 1, the top: the `bench` console script, a click group of thin commands (run, report,
check, list, perf) over the layers below.

Heavy imports (torch, pandas) happen inside the commands so that `bench --help` is fast. Every
user error is a BenchError or a click usage error, printed as one line with exit code 2.
"""

from __future__ import annotations

import sys

import click

from bench.errors import BenchError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fewshot-bench")
def cli() -> None:
    """fewshot-bench: few-shot classification methods compared on identical episodes."""


@cli.command("list")
@click.option("--format", "output_format", type=click.Choice(["rich", "markdown"]),
              default="rich", show_default=True,
              help="rich: tables for the terminal; markdown: GitHub tables, the generated blocks "
                   "of docs/methods.md and docs/presets.md (scripts/list_tables.py fills them).")
@click.option("--only", type=click.Choice(["methods", "datasets", "presets"]), default=None,
              help="Print one table [default: methods, datasets and presets].")
def list_command(output_format: str, only: str | None) -> None:
    """Print the registered methods and datasets with their parameters and defaults, and the
    presets with what they set."""
    from bench.cli.listing import markdown, print_registry

    if output_format == "markdown":
        click.echo(markdown(only), nl=False)
    else:
        print_registry(only)


def _attach_commands() -> None:
    from bench.cli.perf import perf_command
    from bench.cli.report import check_command, report_command
    from bench.cli.run import run_command

    for command in (run_command, report_command, check_command, perf_command):
        cli.add_command(command)


_attach_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 for anything the user can fix."""
    from bench.core.env import keep_freed_memory

    keep_freed_memory()
    try:
        code = cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except BenchError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as usage:  # `bench` alone: its help, not an error
        click.echo(usage.ctx.get_help() if usage.ctx else usage.format_message())
        sys.exit(0)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
