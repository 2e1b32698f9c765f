"""The click plumbing of the command line: usage errors as one `error:` line, the group that turns
nettrain's errors into their message and exit code, and path arguments that refuse "".

Exit codes (docs/commands.md): 0 done; 1 the job ran and failed; 2 bad input, with one
`error: <where>: <what>` line; 130 interrupted after a checkpoint was written. Under MPI a failure
ends the job once, with that code (``failures``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

import click

from nettrain.core.errors import NettrainError

if TYPE_CHECKING:  # the world is imported with the library, inside the commands
    from nettrain.training.mpi import Single


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


def exit_code(exc: BaseException) -> int:
    """The exit code the CLI gives ``exc`` (docs/commands.md, "Errors and exit codes")."""
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if hasattr(exc, "exit_code"):  # NettrainError, Interrupted
        return exc.exit_code
    return 2 if isinstance(exc, OSError) else 1


@contextlib.contextmanager
def failures(w: Single, wait: float | None = None):
    """Under MPI (``w`` the world of nettrain.training.mpi), a failure every rank meets (bad
    data, divergence, a stop request) ends the job once: rank 0 tells why and exits with the
    code, which mpirun passes on, the others exit quietly with 0. A failure of one rank alone
    (the others are not here within ``wait`` s, default ``mpi.AGREE_SECONDS``) is printed by
    that rank, which then aborts the job: the others would wait for it forever."""
    try:
        yield
    except BaseException as exc:
        code = exit_code(exc)
        if w.size == 1 or code == 0:
            raise
        if w.agree(wait):
            if w.root:
                raise
            sys.exit(0)  # rank 0 tells why and gives mpirun its exit code
        what = exc if isinstance(exc, NettrainError) else f"{type(exc).__name__}: {exc}"
        print(f"error: rank {w.rank}: {what} (this rank alone; ending the job)",
              file=sys.stderr, flush=True)  # fmt: skip
        w.abort(code)
