"""Every shell command in the docs that starts weft is exercised by a test.

The docs show commands as a person types them (``weft serve pubsub --port
8000``, ``python examples/...``); the tests run the same commands on free
ports, against servers of their own.  :data:`COVERED` names, for each command
the docs show, the tests that run it; a command added to a page without an
entry here fails :func:`test_every_weft_command_in_the_docs_is_covered`.
"""

from __future__ import annotations

import re

import pytest

from tests.support.docs import weft_commands
from tests.support.processes import ROOT

CLI = "tests/cli/test_cli.py"
CLI_HTTP = "tests/cli/test_cli_http.py"
CLI_TLS = "tests/cli/test_cli_tls.py"
CLI_TRIO = "tests/cli/test_cli_trio.py"
CLI_TLS_OPTIONS = "tests/cli/test_cli_tls_options.py"
CLI_FACTORIES = "tests/cli/test_cli_factories.py"
SYNOPSIS = "tests/docs/test_docs_cli.py::test_the_synopsis_names_every_option"

#: Each command the docs show (as written, after its ``$`` prompt, without
#: its comment), and the tests (``file::function``) that run it.
COVERED: dict[str, tuple[str, ...]] = {
    # docs/cli.md, the synopsis: every option it lists exists, and the reverse.
    "weft serve {echo,pubsub,http} | MODULE:FACTORY | --factory MODULE:FACTORY [--app-dir DIR]": (SYNOPSIS,),
    "weft serve echo --udp [--host H] [--port P | --unix PATH] [--driver D] [--grace SECONDS]": (
        SYNOPSIS,
        "tests/cli/test_cli_udp.py::test_serve_echo_over_a_unix_datagram_socket",
    ),
    "weft connect HOST PORT | --unix PATH | --via COMMAND | --listen [HOST] PORT | --listen --unix PATH": (
        SYNOPSIS,
    ),
    "weft drivers": (f"{CLI}::test_drivers_lists_every_driver",),
    "weft --version": (f"{CLI}::test_version",),
    # docs/cli.md, the examples
    "weft serve pubsub --port 0": (f"{CLI}::test_serve_pubsub_session",),
    "weft serve echo --port 8443 --tls --cert server.pem --key server.key --client-ca client.pem"
    " --require-client-cert &": (f"{CLI_TLS_OPTIONS}::test_mutual_tls",),
    "printf 'hi\\n' | weft connect 127.0.0.1 8443 --tls --cafile client.pem --client-cert server.pem"
    " --client-key server.key": (f"{CLI_TLS_OPTIONS}::test_mutual_tls",),
    "printf 'hi\\n' | weft connect 127.0.0.1 8443 --tls --cafile client.pem": (
        f"{CLI_TLS_OPTIONS}::test_mutual_tls",
    ),
    "weft serve examples.shout:ShoutProtocol --port 0": (
        f"{CLI_FACTORIES}::test_serve_your_own_protocol_on_each_driver",
    ),
    "weft serve examples.shout:shout --stdio -v <<< 'hello'": (
        f"{CLI_FACTORIES}::test_verbose_says_which_kind_it_serves",
    ),
    "weft serve echo --port 8443 --tls --cert server.pem --key server.key --alpn h2,http/1.1 &": (
        f"{CLI_TLS_OPTIONS}::test_connect_verbose_describes_the_session",
    ),
    "printf 'hi\\n' | weft connect 127.0.0.1 8443 --tls --cafile client.pem --alpn http/1.1 -v": (
        f"{CLI_TLS_OPTIONS}::test_connect_verbose_describes_the_session",
    ),
    "weft connect --listen 9000": (
        "tests/cli/test_cli_connect_modes.py::test_listen_accepts_one_connection_and_bridges_it",
    ),
    "weft connect 127.0.0.1 9000": (
        "tests/cli/test_cli_connect_modes.py::test_listen_accepts_one_connection_and_bridges_it",
    ),
    "weft serve echo --port 0 -v --log-format json": ("tests/cli/test_cli_logging.py::test_json_lines",),
    "weft serve echo --udp --port 0": ("tests/cli/test_cli_udp.py::test_serve_echo_over_udp",),
    "weft serve http --max-connections 100": (
        f"{CLI_HTTP}::test_over_max_connections_curl_gets_a_503_at_once",
    ),
    "printf 'PUB news hello\\n' | weft connect 127.0.0.1 8000": (
        f"{CLI}::test_connect_to_a_weft_server_ends_cleanly",
    ),
    "printf 'hello\\n' | weft connect example.test 8443 --tls --cafile ca.pem": (
        f"{CLI_TLS}::test_connect_tls_to_serve_tls",
    ),
    'weft connect --via "ssh gateway nc -q0 10.0.0.5 8443" --tls --server-name internal.test': (
        f"{CLI_TLS}::test_connect_tls_via_a_command_to_serve_tls_on_stdio",
    ),
    "weft serve echo --port 8000": (f"{CLI}::test_port_in_use",),
    "weft connect 127.0.0.1 9": (f"{CLI}::test_connect_refused",),
    "weft connect --unix /run/nothing.sock": (f"{CLI}::test_connect_to_a_missing_unix_socket",),
    "weft serve echo --port eighty": (f"{CLI}::test_bad_arguments",),
    "python examples/pubsub_server.py reactor 8000": (
        "tests/docs/test_example_servers.py::test_pubsub_server_broadcasts_every_line",
    ),
    # docs/drivers-coroutine.md and docs/drivers-trio.md: serving on one driver
    "weft serve echo --driver coroutine --port 8000": (f"{CLI}::test_serve_echo_on_a_free_port",),
    "weft serve pubsub --driver coroutine": (f"{CLI}::test_max_connections_answers_busy",),
    "weft serve http --root . --driver coroutine": (
        f"{CLI_HTTP}::test_curl_fetches_files_over_one_connection",
    ),
    "weft serve echo --driver trio --port 8000": (f"{CLI_TRIO}::test_serve_echo_on_trio",),
    "weft serve pubsub --driver trio": (f"{CLI_TRIO}::test_serve_pubsub_on_trio",),
    "weft serve http --root . --driver trio": (f"{CLI_TRIO}::test_serve_http_on_trio",),
    # docs/http.md
    "weft serve http --root ./site --port 8080": (f"{CLI_HTTP}::test_curl_head_and_conditional_get",),
    # docs/twisted.md
    "twist --reactor=weft web --listen tcp:8080 --path .": (
        "tests/drivers/test_twisted_on_weft_programs.py::test_twist_serves_a_web_resource_on_weft",
    ),
    "trial --reactor=weft mypackage.test": (
        "tests/drivers/test_twisted_on_weft_programs.py::test_trial_runs_tests_on_weft",
    ),
    "python examples/three_frameworks.py --host weft": (
        "tests/docs/test_examples.py::test_example_runs_with_arguments",
    ),
    "python examples/three_frameworks.py --host twisted": (
        "tests/docs/test_examples.py::test_example_runs_with_arguments",
    ),
    # README.md: the install-and-serve line (CI runs the install), and the session
    "python -m pip install . && weft serve pubsub --port 8000": (
        f"{CLI}::test_console_script_runs",
        f"{CLI}::test_serve_pubsub_session",
    ),
    "weft connect 127.0.0.1 8000": (f"{CLI}::test_connect_session_from_the_readme",),
}


def test_every_weft_command_in_the_docs_is_covered() -> None:
    """Each command in a shell block of the docs that starts weft has an entry in COVERED."""
    uncovered = [f"{block.name}: {command}" for block, command in weft_commands() if command not in COVERED]
    assert uncovered == []


def test_every_entry_is_a_command_the_docs_show() -> None:
    """No entry outlives its command: COVERED lists only what the docs show."""
    shown = {command for _, command in weft_commands()}
    assert sorted(set(COVERED) - shown) == []


@pytest.mark.parametrize("test", sorted({test for tests in COVERED.values() for test in tests}))
def test_each_named_test_exists(test: str) -> None:
    """The file is there and defines the test function."""
    path, _, name = test.partition("::")
    source = (ROOT / path).read_text()
    assert re.search(rf"^def {re.escape(name)}\(", source, re.M), test


def test_a_command_is_told_from_its_output() -> None:
    """In a session, only the lines after a ``$`` prompt are commands, and a log
    line that begins with ``weft:`` is not one."""
    commands = {command for _, command in weft_commands()}
    assert "weft serve echo --port eighty" in commands
    assert not any(command.startswith("weft:") for command in commands)
