"""Conventions people expect of a command: --version, shell completion, outputs inside the sweep."""

from __future__ import annotations

import subprocess

import pytest

from orchestrator.cli import main as cli_main
from orchestrator.commands.completion import script


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    from importlib.metadata import version

    assert capsys.readouterr().out.strip() == f"spikesweep {version('spikesweep')}"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_completes_commands_and_options(shell):
    text = script(shell)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    probe = text + (
        '\nCOMP_WORDS=(spikesweep sweep --dr); COMP_CWORD=2; _spikesweep; printf "%s\\n" "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(spikesweep la); COMP_CWORD=1; _spikesweep; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    if shell == "zsh":
        probe = probe.split("\n", 1)[1]  # bash runs the same function body (zsh loads it via bashcompinit)
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.split()
    assert "--dry-run" in out and "landscape" in out
