"""Issue 11 (hardening), item 3: a process waiting out its back-off is shown on the status page.

tests/medsyn_site/test_stack_supervisor.py (a worker test) sees the status page once the killed process is back;
this one sees it during the back-off, and a runner that stopped reporting, with a real Supervisor over a real
`sleep` process in a temporary var directory (as tests/medsyn_site/test_stack_backoff.py), in-process.
"""

from __future__ import annotations

import json

import pytest

from tests.medsyn_site.test_stack_backoff import kill_and_notice, supervised  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(supervised, settings):  # noqa: F811 - the imported fixture
    """A supervised `sleep` killed with SIGKILL and noticed: it waits 30 s before its restart; the site reads this
    var directory's supervisor.json."""
    supervisor, sleeper = supervised
    killed = sleeper.pid
    kill_and_notice(supervisor, sleeper)
    settings.VAR_DIR = supervisor.layout.var
    return supervisor.layout, killed


def _row(page: str) -> str:
    start = page.index('data-process="sleeper"')
    return page[start:page.index("</tr>", start)]


def test_a_process_in_its_back_off_is_shown_restarting(client, make_user, waiting):
    _, killed = waiting
    client.force_login(make_user("researcher"))
    row = _row(client.get("/status/").content.decode())
    assert 'data-restarts="0"' in row and 'data-state="restarting"' in row and "Restarting" in row
    assert "next attempt" not in row and str(killed) not in row  # the details are for staff

    client.force_login(make_user("admin"))
    row = _row(client.get("/status/").content.decode())
    assert 'data-state="restarting"' in row and "was killed by SIGKILL" in row
    assert "next attempt in 2" in row or "next attempt in 30" in row  # 29.x or 30.0 s of the 30 s back-off
    assert 'data-pid=""' in row  # no pid while it is down


def test_a_runner_that_stopped_reporting_is_said_on_the_status_page(client, make_user, waiting):
    layout, _ = waiting
    state = json.loads(layout.supervisor_state.read_text())
    state["updated_unix"] -= 3600
    layout.supervisor_state.write_text(json.dumps(state))
    client.force_login(make_user("researcher"))
    page = client.get("/status/").content.decode()
    assert 'data-testid="supervisor-stale"' in page and "crashed processes are not restarted" in page
