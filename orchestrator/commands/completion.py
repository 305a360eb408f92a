"""``spikesweep completion bash|zsh``: a shell completion script for the commands and their options.

Written from the argument parser itself (no extra dependency), so it always lists the options this
version has. Install with ``eval "$(spikesweep completion bash)"`` in ``~/.bashrc`` (or ``zsh``, which
loads it through ``bashcompinit``).
"""

from __future__ import annotations

import argparse

NAME = "completion"
HELP = 'Print a shell completion script (bash or zsh): eval "$(spikesweep completion bash)".'
SHELLS = ("bash", "zsh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def _words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Sub-command → its option strings (and sub-sub-commands), from the parser."""
    out: dict[str, list[str]] = {}
    for action in parser._actions:  # noqa: SLF001 — argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                words = [s for a in sub._actions for s in a.option_strings]  # noqa: SLF001
                for inner in sub._actions:  # noqa: SLF001
                    if isinstance(inner, argparse._SubParsersAction):  # noqa: SLF001
                        words += list(inner.choices)
                    elif inner.choices and not inner.option_strings:
                        words += [str(c) for c in inner.choices]
                out[name] = sorted(set(words))
    return out


def script(shell: str) -> str:
    from orchestrator.cli import build_parser

    words = _words(build_parser())
    cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in sorted(words.items()))
    body = f"""_spikesweep() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "{" ".join(sorted(words))} --help --version" -- "$cur"))
        return
    fi
    case $cmd in
{cases}
        *) opts="" ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur") $(compgen -f -- "$cur"))
}}
complete -o filenames -F _spikesweep spikesweep
"""
    if shell == "zsh":
        body = "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body


def run(args: argparse.Namespace) -> int:
    print(script(args.shell), end="")
    return 0
