"""Twisted programs, trial and twist on weft's reactor, each in a child process
(installing a Twisted reactor is global, so this process never does it).

The programs are in tests/support/twisted_on_weft.py; the in-process tests of
the reactor are in tests/drivers/test_twisted_reactor.py.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("twisted.web", reason="needs the twisted extra")

from tests.support import TIMEOUT
from tests.support.processes import ROOT, started_children

WEFT_REACTOR = "weft.drivers.twisted_reactor._reactor.WeftReactor"
#: Where pip put the console scripts of this environment (twist, trial).
SCRIPTS = Path(sys.executable).parent


def program(name: str) -> dict[str, Any]:
    """Run ``python -m tests.support.twisted_on_weft NAME``; its JSON findings."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.twisted_on_weft", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_twisted_web_serves_and_fetches_on_weft() -> None:
    """twisted.web's Site answers twisted.web's Agent, under task.react, with the
    global reactor installed by install() on our weft reactor."""
    found = program("web")
    assert found == {
        "reactor": WEFT_REACTOR,
        "on_our_loop": True,
        "status": 200,
        "body": "hello weft",
        "exit": 0,
    }


def test_twisted_names_resolves_on_weft() -> None:
    """twisted.names: a DNS server answering from a hosts file, asked by
    twisted.names.client over UDP and over TCP."""
    found = program("names")
    assert found == {
        "reactor": WEFT_REACTOR,
        "on_our_loop": True,
        "udp": ["127.0.0.42"],
        "tcp": ["127.0.0.42"],
        "exit": 0,
    }


def test_install_on_a_weft_reactor_already_serving() -> None:
    """install(reactor=r): Twisted runs on r, and a Twisted client talks to the
    weft protocol r was already serving."""
    assert program("install-on") == {"reactor": WEFT_REACTOR, "same": True, "echoed": "hello weft"}


def test_trial_runs_tests_on_weft(tmp_path: Path) -> None:
    """``trial --reactor=weft`` runs ordinary trial tests (Deferreds, inlineCallbacks,
    TCP) on weft's reactor: one of them checks that it is weft's."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted.trial",
            "--reactor=weft",
            f"--temp-directory={tmp_path / '_trial_temp'}",
            "tests.support.trial_on_weft",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED (successes=3)" in done.stdout


def test_the_plugin_names_weft_to_trial_and_twist() -> None:
    """The installed distribution's Twisted plugin lists weft among the reactors
    (``trial --help-reactors``, and twist's ``--reactor`` choices)."""
    trial = subprocess.run(
        [str(SCRIPTS / "trial"), "--help-reactors"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert re.search(r"^\s*weft\s", trial.stdout, re.MULTILINE), trial.stdout + trial.stderr
    twist = subprocess.run(
        [str(SCRIPTS / "twist"), "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert '"weft"' in twist.stdout, twist.stdout + twist.stderr


def test_twist_serves_a_web_resource_on_weft() -> None:
    """``twist --reactor=weft web`` serves; the resource says it runs on weft's
    reactor; SIGTERM (to its PID) shuts it down cleanly (the port closed, the
    main loop ended), after which twist ends itself by the same signal, as
    it does on every reactor."""
    with started_children() as children:
        twist = children.start(
            sys.executable,
            "-m",
            "twisted",
            "--log-format=text",
            "--reactor=weft",
            "web",
            "--listen=tcp:0:interface=127.0.0.1",
            "--class=tests.support.twisted_on_weft.ReactorName",
        )
        port: list[int] = []

        def started() -> bool:
            match = re.search(rb"Site starting on (\d+)", twist.stdout)
            if match:
                port.append(int(match.group(1)))
            return bool(match)

        twist.wait_for(started, "twist's 'Site starting on' line")
        with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/", timeout=TIMEOUT) as response:
            body = response.read()
        assert body == f"served on {WEFT_REACTOR}".encode()
        twist.signal(signal.SIGTERM)
        assert twist.wait() == -signal.SIGTERM, twist.stderr
        for line in (b"Received SIGTERM, shutting down.", b"Closed)", b"Main loop terminated."):
            assert line in twist.stdout


def test_without_twisted_the_error_names_the_extra() -> None:
    """Importing the reactor where Twisted is missing fails in one line that says
    which extra to install."""
    code = (
        "import sys; sys.modules['twisted'] = None\n"  # what a missing package looks like to import
        "import weft.drivers.twisted_reactor"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: weft.drivers.twisted_reactor needs Twisted, which is not installed: "
        "pip install 'weft[twisted]'"
    )
