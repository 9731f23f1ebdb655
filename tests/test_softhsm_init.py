"""Creating the SoftHSM token keeps its PINs off every command line.

A process's argv is readable by every user of the machine (/proc/PID/cmdline, ps),
so PINs given to softhsm2-util as ``--pin``/``--so-pin`` leak for as long as it runs.
The token is created through a terminal the service holds instead; these tests
record the argv softhsm2-util is started with and then use the token with the PIN
from the PIN file, through PKCS#11.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hsm import softhsm
from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf


@pytest.fixture
def recorded_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """softhsm2-util behind a wrapper that appends its argv to a file, then runs it."""
    record = tmp_path / "argv.log"
    wrapper = tmp_path / "softhsm2-util-recording"
    real = shutil.which("softhsm2-util")
    assert real is not None
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(softhsm, "SOFTHSM_UTIL", str(wrapper))
    return record


def test_the_pins_never_appear_on_softhsm2_utils_command_line(tmp_path, recorded_argv):
    conf = tmp_path / "softhsm2.conf"
    write_softhsm_conf(conf, tmp_path / "tokens")
    pin_file = tmp_path / "user-pin"

    assert ensure_softhsm_token(conf, "argv-test", pin_file) is True

    user_pin = pin_file.read_text().strip()
    argv_lines = recorded_argv.read_text().splitlines()
    init = [line for line in argv_lines if "--init-token" in line]
    assert len(init) == 1, argv_lines
    assert user_pin not in init[0]
    assert "--pin" not in init[0].split() and "--so-pin" not in init[0].split()


def test_the_token_created_without_argv_pins_opens_with_the_pin_file(
    tmp_path, recorded_argv, base_settings
):
    conf = tmp_path / "softhsm2.conf"
    write_softhsm_conf(conf, tmp_path / "tokens")
    pin_file = tmp_path / "user-pin"
    ensure_softhsm_token(conf, "argv-open", pin_file)

    # Another process: SoftHSM reads its configuration once per process. python-pkcs11
    # directly, not dairi's hsm package: the token is checked by an independent reader.
    probe = (
        "import os, sys, pkcs11\n"
        "lib = pkcs11.lib(sys.argv[1])\n"
        "token = lib.get_token(token_label='argv-open')\n"
        "with token.open(user_pin=sys.argv[2]) as session:\n"
        "    print('logged-in', token.label)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, base_settings.hsm_module, pin_file.read_text().strip()],
        env=dict(os.environ, SOFTHSM2_CONF=str(conf)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["logged-in", "argv-open"]
