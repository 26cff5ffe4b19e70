"""The ``speechret`` console script: one command, a subcommand per Hydra app.

    speechret train experiment=cnn_hash trainer.max_epochs=1
    speechret train -m experiment=cnn_hash model.hash_bits=64,128,256
    speechret index ckpt_path=<best.ckpt> create_key=true
    speechret search ckpt_path=<best.ckpt> queries=q.wav
    speechret evaluate ckpt_path=<best.ckpt> protocol=cross_speaker
    speechret demo [data=dspspeech20 data.root=...] [--cfg job]
    speechret <command> --help          # that command's config groups and config

Everything after the subcommand goes to Hydra unchanged (overrides, ``-m``, ``--cfg``, ``--help``,
``--info``, ``hydra.*``): :func:`main` sets ``sys.argv`` to ``["speechret <command>", *rest]`` and
calls the app module's ``@hydra.main``-decorated ``main`` (:data:`COMMANDS`), the same function the
top-level ``train.py`` / ``index.py`` / ``search.py`` / ``evaluate.py`` shims call. The configs come
from inside the package (:data:`speechret.config.CONF_DIR`) and paths hang off the project root
(:func:`speechret.config.project_root`), so an installed wheel works from any folder.

Raw key material on the command line (``key_hex=``, ``passphrase=``, ...) is refused for every
command before Hydra composes anything (:func:`speechret.crypto.keys.cli_guard`); for ``index`` /
``search`` so is a token (``remote.token=``: :func:`speechret.service.auth.refuse_token_overrides`).

``speechret index|search --remote URL ...`` is sugar for the override ``remote.url=URL`` (index or
search through the keyless service; the token comes from ``remote.token_file=<0600 file>``).

A new command (e.g. ``serve``) is one more :class:`Command` entry pointing at a module with a
``main``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # the module whose ``main`` (a ``@hydra.main`` function) runs the command
    summary: str
    example: str

    def module_file(self) -> str:
        """The command module's source file (runnable: it ends in ``if __name__ == "__main__"``)."""
        return str(importlib.util.find_spec(self.module).origin)


#: the subcommands, in the order ``speechret --help`` lists them
COMMANDS: dict[str, Command] = {
    "train": Command("speechret.apps.train", "train a deep-hashing model (conf/train.yaml)",
                     "speechret train experiment=cnn_hash trainer.max_epochs=1"),
    "index": Command("speechret.apps.index", "add a corpus to an encrypted library; fsck / repair / rebuild / remove "
                     "(conf/index.yaml)", "speechret index ckpt_path=<best.ckpt> create_key=true"),
    "search": Command("speechret.apps.search", "query a library by spoken example (conf/search.yaml)",
                      "speechret search ckpt_path=<best.ckpt> queries=q.wav"),
    "evaluate": Command("speechret.apps.evaluate", "run an evaluation protocol on checkpoints (conf/evaluate.yaml)",
                        "speechret evaluate ckpt_path=<best.ckpt> protocol=cross_speaker"),
    "serve": Command("speechret.service", "the keyless search service over a library (conf/serve.yaml; "
                     "`speechret serve new-token <file>` writes a token)",
                     "speechret serve library=libraries/demo tokens.read_file=read.token tokens.write_file=write.token"),
    "demo": Command("speechret.apps.demo", "the end-to-end demo on the built-in corpus (conf/demo.yaml; "
                    "takes every train override)", "speechret demo trainer.max_epochs=1"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: speechret <command> [hydra overrides ...] [-m] [--cfg job|hydra|all] [--help]", "",
             "speechret: privacy-preserving speech retrieval with deep hashing (Lightning + Hydra + FAISS).", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "examples:"] + [f"  {cmd.example}" for cmd in COMMANDS.values()]
    lines += ["", "Run `speechret <command> --help` for a command's config groups and options.",
              "Paths (data/, logs/, libraries/) hang off paths.root_dir: $SPEECHRET_ROOT, else $PROJECT_ROOT, else the",
              "checkout holding speechret, else (an installed wheel) the current folder."]
    return "\n".join(lines)


#: the commands that take ``remote.url`` (``conf/index.yaml``, ``conf/search.yaml``: speechret.client)
REMOTE_COMMANDS = ("index", "search")


def remote_sugar(args: list[str]) -> list[str]:
    """``--remote URL`` / ``--remote=URL`` -> the Hydra override ``remote.url=URL``."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--remote" or a.startswith("--remote="):
            url = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else "")
            if not url or url.startswith("-"):
                print("error: --remote: give the service's URL (--remote https://host:port)", file=sys.stderr)
                raise SystemExit(2)
            out.append(f"remote.url={url}")
            i += 1 if "=" in a else 2
            continue
        out.append(a)
        i += 1
    return out


def refuse_tokens(args: list[str]) -> None:
    """A token on the command line (``remote.token=...``) is refused before anything is composed:
    the message names the parameter only, exit status 2 (as :func:`cli_guard`)."""
    from speechret.errors import ConfigError
    from speechret.service.auth import refuse_token_overrides

    try:
        refuse_token_overrides(args)
    except ConfigError as exc:
        msg = str(exc).replace("use tokens.read_file / tokens.write_file (0600 files) or tokens.read_env / "
                               "tokens.write_env (names of environment variables)",
                               "use remote.token_file=<a 0600 file holding it>")
        print(f"error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int | None:
    """Dispatch ``speechret <command> [args]`` to the command's Hydra main (see the module docstring).
    Returns an exit status for ``--help`` / usage errors; a command's own status is Hydra's."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from speechret import __version__

        print(f"speechret {__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"speechret: unknown command {name!r}; choose one of {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return 2
    from speechret.crypto.keys import cli_guard

    if name in REMOTE_COMMANDS:
        rest = remote_sugar(rest)
        refuse_tokens(rest)
    cli_guard(rest)  # before anything is composed or written; exits 2 naming the parameter
    module = importlib.import_module(command.module)
    # Hydra parses sys.argv; its usage line names the command. ``train`` names its module's file
    # instead: Lightning's DDP launcher restarts ``python <argv[0]> <args>`` in every child process
    # (speechret.utils.ddp), which must be a runnable script, not ``speechret train``.
    sys.argv = [command.module_file() if name == "train" else f"speechret {name}", *rest]
    status = module.main()
    return status if type(status) is int else 0  # noqa: E721  (train returns its optimized metric)


if __name__ == "__main__":
    sys.exit(main())
