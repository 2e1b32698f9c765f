"""The click plumbing of the command line: usage errors as one `error:` line, the group that turns
nettrain's errors into their message and exit code, and path arguments that refuse "".

Exit codes (docs/commands.md): 0 done; 1 the job ran and failed; 2 bad input, with one
`error: <where>: <what>` line; 130 interrupted after a checkpoint was written.
"""

from __future__ import annotations

import click

from nettrain.core.errors import NettrainError


class ArgumentError(click.UsageError):
    """A usage error (a missing argument, an unknown option, a folder given for a file) printed
    as the one `error:` line every other bad input gets, instead of click's usage block."""

    def show(self, file=None):
        command = self.ctx.command_path if self.ctx else "nettrain"
        click.echo(f"error: {command}: {self.format_message()}", err=True)
        click.echo(f"  see '{command} --help'", err=True)


def one_line(exc: click.UsageError) -> click.UsageError:
    """``exc`` as an ArgumentError, except the usage block that bare `nettrain` prints."""
    if isinstance(exc, (ArgumentError, getattr(click.exceptions, "NoArgsIsHelpError", ()))):
        return exc  # bare `nettrain` prints its help, as click does
    return ArgumentError(exc.format_message(), exc.ctx)


class PathArg(click.Path):
    """click.Path that refuses an empty path (`--weights "$UNSET"` must not mean no weights)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty", param, ctx)
        return super().convert(value, param, ctx)


class Group(click.Group):
    """Turns nettrain's errors into their message and exit code (a traceback only with --debug)."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # the group's own options
            raise one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # an unknown command, or a command's arguments
            raise one_line(exc) from None
        except NettrainError as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"  {exc.hint}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # the reader of stdout left (| head): click exits quietly
            raise
        except OSError as exc:  # a path the user gave cannot be read or written
            if ctx.params.get("debug"):
                raise
            where = exc.filename or "file system"
            click.echo(f"error: {where}: {exc.strerror or exc}", err=True)
            ctx.exit(2)
        except MemoryError:
            if ctx.params.get("debug"):
                raise
            click.echo("error: out of memory: the net, a batch or the data is too large", err=True)
            click.echo("  reduce train.batch_size or the layer sizes", err=True)
            ctx.exit(1)
