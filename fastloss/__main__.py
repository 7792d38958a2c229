"""Command line: ``python -m fastloss [COMMAND] [options]`` (also the ``fastloss`` script).

With no command it prints ``fastloss.show_config()`` (build, SIMD path, threads). Each command
lives in its own module with a ``main(argv) -> int``, imported only when it runs, so adding one
(e.g. ``eval``) is one entry in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help)
COMMANDS = {
    "bench": ("fastloss.bench", "time fastloss against NumPy, PyTorch, scikit-learn, JAX and "
                                "a memory copy"),
    "eval": ("fastloss.eval_cli", "evaluate a loss, accuracy and top-k accuracy over "
                                  ".npy/.npz files in bounded memory"),
}

USAGE = "usage: python -m fastloss [COMMAND] [options]"


def _help() -> str:
    lines = [USAGE, "", "With no command: print fastloss.show_config().", "", "commands:"]
    width = max(map(len, COMMANDS))
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {text}")
    lines.append("")
    lines.append("`python -m fastloss COMMAND --help` describes a command's options.")
    return "\n".join(lines)


def _show_config() -> int:
    try:
        import fastloss
    except ImportError as e:
        print(f"fastloss cannot be imported: {e}", file=sys.stderr)
        return 1
    show = getattr(fastloss, "show_config", None)
    if show is None:
        print("this build of fastloss has no show_config(); commands: "
              + ", ".join(COMMANDS) + " (see --help)", file=sys.stderr)
        return 1
    show()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        return _show_config()
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-h", "--help", "help"):
        print(_help())
        return 0
    if cmd not in COMMANDS:
        print(f"fastloss: unknown command {cmd!r}\n\n{_help()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
