"""The console's rules below the browser (Starlette's test client on a real SQLite ledger):
sessions, CSRF, the sign-in limits, roles, districts, escaping, headers, downloads, the
audit of timeline views, and every text in both languages."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import console_city as sample
import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from closedloop.schemas.policy import default_policy
from closedloop.streams.console import i18n, security
from closedloop.streams.console.web import Settings, create_app
from closedloop.streams.ledger import models
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade

TEMPLATES = Path(__file__).resolve().parents[2] / "streams" / "console" / "templates"


class Clock:
    """The console's wall clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = sample.NOW

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
def city_ledger(sqlite_url: str) -> Iterator[tuple[Engine, sample.City]]:
    upgrade(sqlite_url)
    engine = open_engine(sqlite_url)
    city = sample.fill(engine)
    yield engine, city
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(city_ledger: tuple[Engine, sample.City], clock: Clock) -> Any:
    return create_app(Settings(engine=city_ledger[0], policy=default_policy(),
                               secret=b"k" * 32, now=clock))


def _client(app: Any, lang: str = "en") -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False,
                      headers={"accept-language": lang})


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _sign_in(client: TestClient, name: str, password: str = sample.PASSWORD) -> Any:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "username": name, "password": password,
                                       "next": "/today"})


def test_a_session_is_a_signed_httponly_samesite_cookie_and_the_ledger_keeps_its_hash(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    client = _client(app)
    answer = _sign_in(client, "city-op")
    assert answer.status_code == 303 and answer.headers["location"] == "/today"
    cookie = next(c for c in answer.headers.get_list("set-cookie")
                  if c.startswith("closedloop_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    token = security.unsign(b"k" * 32, "session", cookie.split("=", 1)[1].split(";")[0])
    assert token is not None
    with city_ledger[0].connect() as connection:
        kept = connection.execute(select(models.ConsoleSession.token_hash)).scalars().all()
    assert kept == [security.token_hash(token)] and token not in kept
    assert client.get("/today").status_code == 200
    # a tampered cookie is no session
    forged = _client(app)
    forged.cookies.set("closedloop_session", token + ".forged")
    assert forged.get("/today").status_code == 303
    unsigned = _client(app)
    unsigned.cookies.set("closedloop_session", token)
    assert unsigned.get("/today").status_code == 303


def test_every_post_without_its_csrf_token_is_refused(app: Any) -> None:
    client = _client(app)
    assert client.post("/login", data={"username": "city-op", "password": sample.PASSWORD,
                                       "next": "/today"}).status_code == 403
    _sign_in(client, "city-op")
    for path, data in (("/alerts/act", {"alert_id": "x", "action": "ack"}),
                       ("/lang", {"lang": "zh"}), ("/logout", {})):
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
    assert client.get("/today").status_code == 200  # still signed in: logout was refused


def test_sign_ins_are_limited_per_account_and_per_address(app: Any, clock: Clock) -> None:
    client = _client(app)
    for _ in range(security.ACCOUNT_FAILURES):
        assert _sign_in(client, "pd-op", "wrong-password-x").status_code == 401
    # the right password is not even checked now
    locked = _sign_in(client, "pd-op")
    assert locked.status_code == 429 and "try again after" in locked.text
    assert _sign_in(_client(app), "city-op").status_code == 303  # another account is not
    clock.now += security.FAILURE_WINDOW + timedelta(seconds=1)
    assert _sign_in(_client(app), "pd-op").status_code == 303
    # one address trying many accounts is slowed too
    for n in range(security.ADDRESS_FAILURES):
        _sign_in(client, f"nobody-{n}", "wrong-password-x")
    assert _sign_in(client, "viewer-1").status_code == 429


def test_a_viewer_reads_and_may_not_act(app: Any, city_ledger: tuple[Engine, sample.City]
                                        ) -> None:
    client = _client(app)
    _sign_in(client, "viewer-1")
    page = client.get("/alerts")
    assert page.status_code == 200 and 'name="alert_id"' not in page.text
    refused = client.post("/alerts/act", data={
        "csrf": _csrf(page.text), "alert_id": city_ledger[1].pudong_positive.alert_id,
        "action": "resolve"})
    assert refused.status_code == 403
    with city_ledger[0].connect() as connection:
        assert connection.execute(select(func.count()).select_from(
            models.AlertAction).where(models.AlertAction.operator_id == "viewer-1")
        ).scalar_one() == 0


def test_a_district_account_gets_404_for_another_districts_alert_subject_and_name(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    city = city_ledger[1]
    client = _client(app)
    _sign_in(client, "pd-op")
    for path in (f"/alerts/{city.xuhui_positive.alert_id}", f"/alerts/{city.orphan.alert_id}",
                 f"/timeline/{city.xuhui_positive.subject}",
                 f"/alerts?district={sample.XUHUI}", f"/alerts.csv?district={sample.XUHUI}",
                 "/alerts/al-nosuchalert", "/rounds/no-such-round"):
        assert client.get(path).status_code == 404, path
    # acting on another district's alert by id: refused as unknown, nothing recorded
    page = client.get("/alerts").text
    done = client.post("/alerts/act", data={"csrf": _csrf(page), "action": "ack",
                                            "alert_id": city.xuhui_positive.alert_id})
    assert done.status_code == 303
    flash = client.get("/alerts").text
    assert "no such alert in your districts" in flash
    with city_ledger[0].connect() as connection:
        state = connection.execute(select(models.Alert.state).where(
            models.Alert.alert_id == city.xuhui_positive.alert_id)).scalar_one()
    assert state == "raised"
    listed = client.get("/alerts?status=all").text
    assert sample.XUHUI not in listed.split("<table", 1)[1]


def test_acting_on_many_alerts_at_once_reports_each_refusal(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    city = city_ledger[1]
    client = _client(app)
    _sign_in(client, "city-op")
    page = client.get("/alerts").text
    closed = next(a for a in city.alerts if a.alert_id not in (
        city.pudong_positive.alert_id,) and a.kind == "round_missed" and a is city.missed[0])
    answer = client.post("/alerts/act", data={
        "csrf": _csrf(page), "action": "assign", "assignee": "pd-op", "note": "today",
        "alert_id": [city.pudong_positive.alert_id, city.xuhui_positive.alert_id,
                     closed.alert_id], "back": "/alerts?kind=positive"})
    assert answer.status_code == 303 and answer.headers["location"] == "/alerts?kind=positive"
    text = client.get("/alerts?kind=positive").text
    assert "Assign: 2 alert(s)." in text
    assert "the alert is closed (resolved or caught up)" in text  # the caught-up one
    with city_ledger[0].connect() as connection:
        assigned = connection.execute(select(models.Alert.alert_id).where(
            models.Alert.assignee == "pd-op")).scalars().all()
    assert sorted(assigned) == sorted([city.pudong_positive.alert_id,
                                       city.xuhui_positive.alert_id])


def test_output_is_escaped_and_no_script_may_run(app: Any,
                                                 city_ledger: tuple[Engine, sample.City]
                                                 ) -> None:
    target = city_ledger[1].pudong_positive.alert_id
    client = _client(app)
    _sign_in(client, "city-op")
    page = client.get(f"/alerts/{target}").text
    note = "<script>alert(1)</script>"
    client.post("/alerts/act", data={"csrf": _csrf(page), "action": "ack", "note": note,
                                     "alert_id": target, "back": f"/alerts/{target}"})
    shown = client.get(f"/alerts/{target}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert "<script>" not in shown.text
    policy = shown.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # none at all
    assert shown.headers["x-frame-options"] == "DENY"
    assert shown.headers["cache-control"] == "no-store"


def test_viewing_a_timeline_is_audited_and_a_raw_identifier_is_never_looked_up(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    subject = city_ledger[1].pudong_positive.subject
    client = _client(app)
    _sign_in(client, "pd-op")
    assert client.get(f"/timeline/{subject}").status_code == 200
    assert client.get("/timeline/p:nobody").status_code == 404
    assert client.get("/timeline/13800138000").status_code == 404  # a mobile number
    with city_ledger[0].connect() as connection:
        views = connection.execute(select(
            models.TimelineView.operator_id, models.TimelineView.subject,
            models.TimelineView.via, models.TimelineView.viewed_at)
            .order_by(models.TimelineView.id)).all()
    assert [tuple(v) for v in views] == [("pd-op", subject, "console", sample.NOW),
                                         ("pd-op", "p:nobody", "console", sample.NOW)]


def test_the_alerts_csv_is_utf8_with_a_bom_and_headers_in_the_pages_language(
    app: Any
) -> None:
    client = _client(app, "zh-CN")
    _sign_in(client, "pd-op")
    answer = client.get("/alerts.csv?kind=positive&status=all")
    assert answer.headers["content-disposition"] == 'attachment; filename="alerts.csv"'
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows and {row["区"] for row in rows} == {sample.PUDONG}


def test_health_answers_without_a_session_and_names_no_data(app: Any) -> None:
    from closedloop.streams.ledger.migrate import head_revision

    answer = _client(app).get("/health")
    assert answer.status_code == 200 and answer.json() == {
        "status": "ok", "ledger_revision": head_revision()}


def test_an_account_disabled_loses_its_session_at_once(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    from closedloop.streams.console import accounts

    client = _client(app)
    _sign_in(client, "pd-op")
    assert client.get("/today").status_code == 200
    with city_ledger[0].begin() as connection:
        accounts.disable(connection, "pd-op")
    assert client.get("/today").status_code == 303
    assert _sign_in(client, "pd-op").status_code == 401


def test_a_session_ends_after_a_shift(app: Any, clock: Clock) -> None:
    from closedloop.streams.console.accounts import SESSION_HOURS

    client = _client(app)
    _sign_in(client, "city-op")
    clock.now += timedelta(hours=SESSION_HOURS, seconds=1)
    assert client.get("/today").headers["location"] == "/login?next=%2Ftoday"


def test_the_language_follows_the_browser_then_the_switch(app: Any) -> None:
    client = _client(app, "en-GB,en;q=0.9,zh;q=0.5")
    _sign_in(client, "city-op")
    assert "<h1>Today (daily closure)</h1>" in client.get("/today").text
    token = _csrf(client.get("/today").text)
    client.post("/lang", data={"csrf": token, "lang": "zh", "next": "/today"})
    assert "<h1>今日（日清日结）</h1>" in client.get("/today").text
    assert i18n.choose(None, None) == "zh"  # a Chinese city's default
    assert i18n.choose(None, "fr-FR, en;q=0.3, zh-CN;q=0.8") == "zh"


def test_every_text_is_in_both_languages_and_every_key_a_template_names_exists() -> None:
    for key, (english, chinese) in i18n.MESSAGES.items():
        assert english.strip() and chinese.strip(), key
        fields = set(re.findall(r"{(\w+)}", english))
        assert fields == set(re.findall(r"{(\w+)}", chinese)), key
    for kind, (english, chinese) in i18n.KINDS.items():
        assert english and re.search(r"[\u4e00-\u9fff]", chinese), kind
    named: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        named |= set(re.findall(r"\bt[m]?\('([a-z0-9_.]+)'", text))
        # no text for people outside t(): words between tags are template expressions only
        for words in re.findall(r">([^<>{}]*[A-Za-z\u4e00-\u9fff][^<>{}]*)<", text):
            assert not words.strip(), f"{template.name}: {words.strip()!r} is not translated"
    dynamic = {"state.", "level.", "done.", "action.", "role.", "stage.", "sort.", "what.",
               "lang.", "via.", "reason.", "via_short.", "tl.", "error.", "flash.", "field.",
               "severity.", "col."}
    for key in named:
        assert key in i18n.MESSAGES or any(key.startswith(p) for p in dynamic), key
    from closedloop.streams.app.alerts import SEVERITY
    from closedloop.streams.ledger.models import ALERT_STATES

    for state in (*ALERT_STATES, "open", "all"):
        assert f"state.{state}" in i18n.MESSAGES
    assert set(SEVERITY) <= set(i18n.KINDS)
    from closedloop.streams.app.today import SEVERITIES, SUPERVISION

    for name in (*(f"severity.{s}" for s in SEVERITIES), *(f"col.{c}" for c in SUPERVISION)):
        assert name in i18n.MESSAGES, name


def test_the_demo_ends_with_how_to_open_the_console_and_a_demo_account(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from closedloop.streams.cli import main
    from closedloop.streams.console import accounts

    def demo() -> str:
        assert main(["demo", "--people", "300", "--days", "2", "--ledger", sqlite_url]) == 0
        out = capsys.readouterr().out
        assert f"closedloop console serve --ledger {sqlite_url}" in out
        found = re.search(r"sign in as demo, password (\S+)\n", out)
        assert found, out[-600:]
        return found.group(1)

    first = demo()
    engine = open_engine(sqlite_url)
    try:
        session = accounts.sign_in(engine, "demo", first, "127.0.0.1")
        assert session.caller.role == "operator" and session.caller.city_level
        second = demo()  # a new password each demo; the old one no longer opens it
        assert second != first
        with pytest.raises(accounts.SignInRefused):
            accounts.sign_in(engine, "demo", first, "127.0.0.1")
        with engine.connect() as connection:
            assert accounts.signed_in(connection, session.token) is None
        accounts.sign_in(engine, "demo", second, "127.0.0.1")
    finally:
        engine.dispose()


def test_no_demo_account_is_made_in_a_server_ledger() -> None:
    from sqlalchemy import create_engine

    from closedloop.streams.console.accounts import demo_account

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert demo_account(engine) is None  # decided by the dialect: nothing is connected to
    engine.dispose()


def test_everything_served_comes_from_the_package(app: Any) -> None:
    """No page names another site: no CDN, no web font, no script at all."""
    for template in [*TEMPLATES.glob("*.html"), TEMPLATES.parent / "static" / "console.css"]:
        text = template.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), template.name
        assert "<script" not in text and "@import" not in text, template.name
    client = _client(app)
    _sign_in(client, "city-op")
    links = re.findall(r'(?:href|src)="([^"]+)"', client.get("/today").text)
    assert "/static/console.css" in links
    assert all(link.startswith(("/", "#")) and not link.startswith("//") for link in links)
    assert client.get("/static/console.css").status_code == 200


def _findings_table(page: str) -> list[list[str]]:
    """The rows of the board's open findings (district, then its counts), as text."""
    table = page.split('<table class="data findings">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in
             re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


@pytest.mark.parametrize(("lang", "heading", "critical"), [
    ("en", "Open supervision findings", "Critical"), ("zh", "督导检查问题未销号", "严重")])
def test_the_board_lists_open_findings_per_district_in_the_accounts_districts(
    app: Any, lang: str, heading: str, critical: str
) -> None:
    client = _client(app, lang)
    _sign_in(client, "city-op")
    page = client.get("/today").text
    assert heading in page and f">{critical}</th>" in page
    rows = _findings_table(page)
    # district, critical, major, minor, open, then the latest report's five counts
    assert rows[0][:5] == [sample.XUHUI, "1", "2", "0", "3"]
    assert rows[1][:5] == [sample.PUDONG, "0", "1", "1", "2"]
    assert rows[1][5:7] == ["0", "3"]  # findings_new, findings_open of the report
    assert len(rows) == 2
    district = _client(app, lang)
    _sign_in(district, "pd-op")
    assert [row[0] for row in _findings_table(district.get("/today").text)] == [sample.PUDONG]


def test_a_units_timeline_shows_its_findings_rectifications_and_rechecks(
    app: Any, city_ledger: tuple[Engine, sample.City]
) -> None:
    city = city_ledger[1]
    client = _client(app, "zh")
    _sign_in(client, "city-op")
    page = client.get(f"/timeline/{city.unit}").text
    assert page.count('class="what-finding"') == 3
    assert page.count('class="what-rectified"') == 3
    assert page.count('class="what-recheck"') == 2
    assert "问题 f-pd-1 回头看：未通过，重新整改" in page and "复查通过已销号" in page
    english = _client(app, "en")
    _sign_in(english, "city-op")
    assert "finding f-pd-2: venue_code, Major" in english.get(f"/timeline/{city.unit}").text
    district = _client(app)
    _sign_in(district, "pd-op")
    assert district.get(f"/timeline/{city.xuhui_unit}").status_code == 404
