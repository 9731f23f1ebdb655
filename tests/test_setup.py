"""First-run set-up: the SoftHSM token is created only by an explicit ``dairi init`` on a
fresh data directory, and nothing ever overwrites a PIN (issue 16.1, 9.15).

Every command runs as a real ``dairi`` process on a data directory of its own, with a
SoftHSM token directory of its own (the session's test token is never touched).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_install import DAIRI, PROJECT_DIR, Install


@pytest.fixture
def data(tmp_path: Path) -> Install:
    return Install(tmp_path / "var", "dairi-setup-test")


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """One data directory after ``dairi init`` (token, PIN, database, development PKI)."""
    return Install(tmp_path_factory.mktemp("initialised") / "var", "dairi-setup-test").init()


def test_init_on_a_fresh_directory_creates_the_token_and_its_pin(initialised: Install):
    assert initialised.pin_file.is_file()
    assert oct(initialised.pin_file.stat().st_mode & 0o777) == "0o600"
    assert len(initialised.pin_file.read_text().strip()) >= 16
    assert initialised.token_files(), "no SoftHSM token was written"
    # The PKI's keys went into that token with that PIN: a second run finds all of it.
    again = initialised.run("init")
    assert again.returncode == 0, again.stderr
    assert "(created)" not in again.stdout


def test_the_so_pin_is_not_kept_after_set_up(initialised: Install):
    # 9.15: the SO PIN is needed only to initialise the token and set the user PIN.
    assert not initialised.so_pin_file.exists()
    assert [p.name for p in initialised.hsm.iterdir() if "so" in p.name.split(".")] == []


def test_a_second_init_leaves_the_pin_file_untouched(initialised: Install):
    before = initialised.pin_file.read_bytes()
    stat = initialised.pin_file.stat()
    done = initialised.run("init")
    assert done.returncode == 0, done.stderr
    assert initialised.pin_file.read_bytes() == before
    assert initialised.pin_file.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize("command", [["init"], ["serve", "--port", "0"], ["credential", "list"]])
def test_an_empty_token_directory_beside_a_pin_file_stops_with_token_missing(
    initialised: Install, tmp_path: Path, command: list[str]
):
    # The volume holding the token is not mounted: the directory is there, empty.
    pin = initialised.pin_file.read_bytes()
    away = tmp_path / "tokens.away"
    shutil.move(initialised.tokens, away)
    initialised.tokens.mkdir(mode=0o700)
    try:
        done = initialised.run(*command, timeout=60)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "error HSM_TOKEN_MISSING" in done.stderr
        assert initialised.pin_file.read_bytes() == pin
        assert initialised.token_files() == [], "a new token was initialised"
        assert not initialised.so_pin_file.exists()
    finally:
        shutil.rmtree(initialised.tokens)
        shutil.move(away, initialised.tokens)
    # The real token is back: everything works again with the same PIN.
    done = initialised.run("credential", "list")
    assert done.returncode == 0, done.stderr


def test_a_missing_token_directory_beside_a_pin_file_stops_with_token_missing(
    initialised: Install, tmp_path: Path
):
    pin = initialised.pin_file.read_bytes()
    away = tmp_path / "tokens.away"
    shutil.move(initialised.tokens, away)
    try:
        done = initialised.run("init")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "error HSM_TOKEN_MISSING" in done.stderr
        assert initialised.pin_file.read_bytes() == pin
        assert initialised.token_files() == []
    finally:
        shutil.rmtree(initialised.tokens, ignore_errors=True)
        shutil.move(away, initialised.tokens)


def test_a_leftover_so_pin_file_alone_is_a_trace_of_an_earlier_token(data: Install):
    # Any trace of an earlier token (here the SO PIN file older versions kept) means the
    # token is missing, not that this is a first run.
    data.hsm.mkdir(parents=True)
    data.so_pin_file.write_text("0123456789abcdef\n")
    done = data.run("init")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error HSM_TOKEN_MISSING" in done.stderr
    assert not data.pin_file.exists()
    assert data.so_pin_file.read_text() == "0123456789abcdef\n"
    assert data.token_files() == []


def test_serve_on_a_fresh_directory_creates_no_token(data: Install):
    process = subprocess.Popen(
        [DAIRI, "serve", "--port", "0"],
        env=data.env(),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
        pytest.fail(f"dairi serve kept running on a directory without a token:\n{stderr}")
    assert process.returncode == 2, (stdout, stderr)
    assert "error HSM_TOKEN_MISSING" in stderr
    assert "dairi init" in stderr
    assert not data.pin_file.exists()
    assert data.token_files() == []
