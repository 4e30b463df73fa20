"""Conventions a shell user expects: completion in bash, messages on stderr that --quiet and -v tune,
and a library that prints nothing unless its caller asks."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import DATA

ASTRONAUT = DATA / "astronaut.png"
FADER = [sys.executable, "-c", "import sys; sys.argv[0] = 'fader'; from fadercli.cli import main; main()"]


def complete(words: str) -> list[str]:
    """What bash completion offers for the command line `words` (the cursor after its last word)."""
    env = {
        **os.environ,
        "_FADER_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = subprocess.run(FADER, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completes_commands_and_fixed_choices():
    assert complete("fader ed") == ["edit"]
    assert complete("fader mo") == ["models"]
    assert complete("fader edit photo.jpg --face ")[:2] == ["all", "largest"]
    assert complete("fader edit photo.jpg --face la") == ["largest"]
    assert complete("fader edit photo.jpg --format w") == ["webp"]
    assert complete("fader train data --crop ") == ["none", "celeba"]
    assert complete("fader demo --style ")  # the toy renderers, listed
    assert "mps" in complete("fader sweep x.jpg --device ")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_install_completion_makes_bash_complete(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    # Typer finds the shell from the parent process: a bash (two commands, so that bash does not exec).
    command = f"{shlex.join(FADER)} --install-completion; exit $?"
    installed = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    assert "fader" in (tmp_path / ".bashrc").read_text()
    # A new interactive bash has the completion function registered for `fader`.
    shown = subprocess.run(["bash", "-ic", "complete -p fader"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "fader" in shown.stdout, shown.stderr


def test_quiet_and_verbose_set_what_stderr_shows(run_cli, toy_runs, tmp_path):
    args = ["edit", ASTRONAUT, "-m", toy_runs["both"], "--set", "Smiling=1", "--force"]
    normal = run_cli(*args, "-o", tmp_path / "a.png")
    assert normal.exit_code == 0, normal.output
    assert normal.stderr.startswith("fader: device: cpu") and "face(s) found" not in normal.stderr
    quiet = run_cli(*args, "-o", tmp_path / "b.png", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    verbose = run_cli("-v", *args, "-o", tmp_path / "c.png")
    assert verbose.exit_code == 0
    assert f"fader: {ASTRONAUT}: 1 face(s) found, 1 chosen" in verbose.stderr.splitlines()
    assert normal.stdout.strip() == str(tmp_path / "a.png")  # results stay on stdout


def test_the_library_prints_nothing(toy_runs, tmp_path):
    script = f"""
import fadercli.api as a
from fadercli.media import save_image
fader = a.Fader.load({str(toy_runs["both"])!r})
result = fader.edit({str(ASTRONAUT)!r}, {{"Smiling": 1}})
save_image(result.image, {str(tmp_path / "out.png")!r})
assert fader.inspect({str(ASTRONAUT)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").stat().st_size > 0
    assert (result.stdout, result.stderr) == ("", "")
