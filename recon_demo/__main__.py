"""``python -m recon_demo COMMAND``: the project's command-line tools.

Each command is a module of ``recon_demo.cli`` (its flags and its ``main``). Every command shows its progress on
stderr (``recon_demo.progress``; ``--quiet`` turns it off) and stops on Ctrl-C with one line and exit status 130."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from recon_demo.cli import bench, data, evaluate, loss_study, restore, train
from recon_demo.progress import CTRL_C, on_ctrl_c
from recon_demo.serving.runtime import tune_allocator

COMMANDS = {  # name -> (its module in recon_demo.cli, the one-line help)
    "evaluate": (evaluate, "the lecture's evaluation protocol on a folder of images or the held-out examples"),
    "train": (train, "train a model (resumable) and record it in a weights manifest"),
    "loss-study": (loss_study, "the lecture's loss study: one small CNN trained with each loss, compared"),
    "data": (data, "the open training data sources: installed or not, how many images, licence, install command"),
    "restore": (restore, "restore pictures that are already blurred: the kernel estimated, real edges, colour"),
    "bench": (bench, "speed of the engine against a plain lecture-style loop, the machine's limit and the app"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recon_demo", description="recon-demo command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(command)
        command.add_argument("--quiet", action="store_true", help="no progress on stderr (the result alone, on stdout)")
    args = parser.parse_args(argv)
    tune_allocator()
    CTRL_C.clear()  # a Ctrl-C of an earlier command in this process is not this one's
    previous = signal.signal(signal.SIGINT, on_ctrl_c)  # train sets its own while it trains
    try:
        return COMMANDS[args.command][0].main(args)
    except BaseException as err:  # Ctrl-C: one line, no traceback (train saves its state and says how to resume)
        if not (_interrupted(err) or CTRL_C.is_set()):
            raise
        print(f"\n{args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(err: BaseException | None) -> bool:
    """Whether ``err`` is Ctrl-C, or comes from it: a KeyboardInterrupt inside a library imported on first use
    (scipy, when RL first runs) surfaces as ``ImportError: initialization failed`` raised from it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _exit(code: int) -> None:
    """Exit with ``code``. After a Ctrl-C the process ends here, streams flushed, without the interpreter's
    finalisation: a KeyboardInterrupt that went through code a C extension ran by ``PyRun_String`` (Cython's module
    set-up does, e.g. scipy's on its first use) leaves CPython's "unhandled interrupt" flag set, and the
    interpreter then ends itself by SIGINT (status −2) whatever status was asked for; seen in CI under load."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
