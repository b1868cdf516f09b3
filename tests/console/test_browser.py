"""The console in a real browser (Debian's Chromium), on SQLite and on PostgreSQL: signing
in, filtering, acknowledging an alert and finding it acknowledged in the ledger, downloading
the catch-up list and reading it back, switching language, and what an attacker would try."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import quote

import console_city as sample
from console_browser import DESKTOP, PHONE, Browser, Console
from openpyxl import load_workbook
from sqlalchemy import select

from closedloop.streams.ledger import models


def _state(console: Console, alert_id: str) -> tuple[str, str | None]:
    with console.ledger.connect() as connection:
        row = connection.execute(select(models.Alert.state, models.Alert.note)
                                 .where(models.Alert.alert_id == alert_id)).one()
    return str(row.state), row.note


def _audit(console: Console, alert_id: str) -> list[tuple[str, str, str]]:
    with console.ledger.connect() as connection:
        rows = connection.execute(
            select(models.AlertAction.action, models.AlertAction.operator_id,
                   models.AlertAction.outcome)
            .where(models.AlertAction.alert_id == alert_id).order_by(models.AlertAction.id))
        return [tuple(row) for row in rows]


def test_signing_in_shows_today_ranked_and_a_wrong_password_does_not(
    console: Console, browser: Browser
) -> None:
    browser.go(f"{console.url}/today")
    assert "/login" in browser.driver.current_url  # no session: the sign-in form first
    browser.find("#username").send_keys("city-op")
    browser.find("#password").send_keys("not-the-password")
    browser.find(".login button[type=submit]").click()
    assert "账号或密码错误" in browser.text(".login .error")
    browser.sign_in(console.url, "city-op")
    assert browser.driver.current_url.endswith("/today")
    assert browser.find("h1").text == "今日（日清日结）"
    districts = [cell.text for cell in browser.find_all("table.board tbody th")]
    # 浦东新区 holds the one alert at the city command (level 3): most behind, first
    assert districts[0] == sample.PUDONG
    assert set(districts) == {*sample.DISTRICTS, "（无区：市级）"}
    assert len(browser.find_all("ul.sparks svg polyline")) >= len(sample.DISTRICTS)


def test_the_board_shows_open_findings_per_district_of_the_account(
    console: Console, browser: Browser
) -> None:
    browser.sign_in(console.url, "city-op")
    browser.go(f"{console.url}/today")
    assert "督导检查问题未销号" in browser.text("main")
    rows = browser.find_all("table.findings tbody tr")
    cells = [[cell.text for cell in row.find_elements("css selector", "th, td")]
             for row in rows]
    assert [row[:5] for row in cells] == [[sample.XUHUI, "1", "2", "0", "3"],
                                          [sample.PUDONG, "0", "1", "1", "2"]]
    browser.find("table.findings tbody th a").click()  # a district goes to its alerts
    browser.wait_for(lambda: "/alerts?district=" in browser.driver.current_url)
    browser.go(f"{console.url}/timeline/{quote(console.city.unit)}")
    assert len(browser.find_all("li.what-finding")) == 3
    assert len(browser.find_all("li.what-recheck")) == 2
    browser.driver.delete_all_cookies()  # another account, in the same browser
    browser.sign_in(console.url, "pd-op")
    browser.go(f"{console.url}/today")
    assert [row.find_element("css selector", "th").text
            for row in browser.find_all("table.findings tbody tr")] == [sample.PUDONG]


def test_filtering_alerts_by_kind_and_district(console: Console, browser: Browser) -> None:
    browser.sign_in(console.url, "city-op")
    browser.go(f"{console.url}/alerts")
    from selenium.webdriver.support.ui import Select

    Select(browser.find("#f-kind")).select_by_value("positive")
    Select(browser.find("#f-district")).select_by_value(sample.PUDONG)
    Select(browser.find("#f-status")).select_by_value("all")
    browser.find(".filters button[type=submit]").click()
    browser.wait_for(lambda: "kind=positive" in browser.driver.current_url)
    rows = browser.find_all("table.alerts tbody tr")
    assert rows, "no row for 浦东新区's positives"
    for row in rows:
        cells = [cell.text for cell in row.find_elements("css selector", "td")]
        assert "单管阳性" in cells and sample.PUDONG in cells
    ids = {link.text for link in browser.find_all("table.alerts td.id a")}
    assert console.city.pudong_positive.alert_id in ids
    assert console.city.xuhui_positive.alert_id not in ids


def test_acknowledging_an_alert_is_recorded_in_the_ledger_with_its_operator(
    console: Console, browser: Browser
) -> None:
    target = console.city.pudong_positive.alert_id
    browser.sign_in(console.url, "pd-op")
    browser.go(f"{console.url}/alerts?kind=positive")
    browser.find(f'input[name=alert_id][value="{target}"]').click()
    browser.find("#b-note").send_keys("转运中 (transfer under way)")
    browser.find(".bulk button[type=submit]").click()
    browser.wait_for(lambda: browser.find_all(".flash"))
    assert "签收：1 条预警" in browser.text(".flash")
    assert _state(console, target) == ("acknowledged", "转运中 (transfer under way)")
    assert _audit(console, target) == [("ack", "pd-op", "applied")]
    browser.go(f"{console.url}/alerts/{target}")
    assert "已签收" in browser.text(".facts")


def test_downloading_the_catchup_list_and_reading_it_back(
    console: Console, browser: Browser
) -> None:
    browser.sign_in(console.url, "city-op")
    browser.go(f"{console.url}/rounds/{sample.ROUND}")
    pending = {alert.subject for alert in console.city.missed[2:]}  # two were caught up
    shown = {link.text for link in browser.find_all("section.grid td a[href^='/timeline/']")}
    assert shown == pending
    browser.find(f'a[href="/rounds/{sample.ROUND}/catch-up.csv"]').click()
    browser.find(f'a[href="/rounds/{sample.ROUND}/catch-up.xlsx"]').click()
    stem = f"catch-up-{sample.ROUND}"
    csv_path = browser.downloads / f"{stem}.csv"
    xlsx_path = browser.downloads / f"{stem}.xlsx"
    browser.wait_for(lambda: csv_path.exists() and xlsx_path.exists()
                     and not list(browser.downloads.glob("*.crdownload")))
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads the Chinese
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {row["人员"] for row in rows} == pending  # headers in the page's language
    assert {row["区"] for row in rows} <= {sample.PUDONG, sample.XUHUI}
    book = load_workbook(xlsx_path, read_only=True)
    people = {cell for sheet in book.worksheets
              for cell, in sheet.iter_rows(min_row=2, min_col=3, max_col=3, values_only=True)}
    assert people == pending
    assert any(name.startswith(sample.PUDONG) and "网格" in name for name in book.sheetnames)


def test_switching_language_holds_from_page_to_page(
    console: Console, browser: Browser, english_browser: Browser
) -> None:
    browser.sign_in(console.url, "city-op")
    assert browser.driver.find_element("css selector", "html").get_attribute("lang") == "zh-CN"
    browser.find('.lang button[value="en"]').click()
    browser.wait_for(lambda: browser.find("h1").text == "Today (daily closure)")
    browser.go(f"{console.url}/alerts")
    assert browser.find("h1").text == "Alerts"
    assert "Positive (single tube)" in browser.text() or "Follow-up overdue" in browser.text()
    assert not re.search(r"[\u4e00-\u9fff]", _chrome_text(browser)), "Chinese left in English"
    browser.find('.lang button[value="zh"]').click()
    browser.wait_for(lambda: browser.find("h1").text == "预警")
    # a browser that prefers English gets English without choosing
    english_browser.sign_in(console.url, "city-op")
    assert english_browser.find("h1").text == "Today (daily closure)"


def _chrome_text(browser: Browser) -> str:
    """The page's own words: its text without the data (districts, grids, notes are the
    city's, in whatever language the city writes them)."""
    text = browser.driver.find_element("css selector", "body").text
    for name in (*sample.DISTRICTS, "中文", "网格"):
        text = text.replace(name, "")
    return text


def test_another_districts_alert_subject_or_name_by_url_is_not_found(
    console: Console, browser: Browser
) -> None:
    browser.sign_in(console.url, "pd-op")
    other = console.city.xuhui_positive
    for path in (f"/alerts/{other.alert_id}", f"/timeline/{quote(other.subject)}",
                 f"/alerts?district={quote(sample.XUHUI)}",
                 f"/alerts/{console.city.orphan.alert_id}"):
        browser.go(console.url + path)
        assert browser.find("h1").text == "错误", path
        # nothing of the alert is shown: no facts, no table, no timeline, no kind
        assert not browser.find_all(".facts, table, .timeline"), path
        assert "单管阳性" not in browser.text() and "orphan" not in browser.text()
        status = browser.driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseStatus")
        assert status == 404, path
    # and its own district's are there
    browser.go(f"{console.url}/alerts/{console.city.pudong_positive.alert_id}")
    assert console.city.pudong_positive.subject in browser.text(".facts")


def test_a_form_posted_without_its_csrf_token_is_refused(
    console: Console, browser: Browser
) -> None:
    target = console.city.pudong_positive.alert_id
    browser.sign_in(console.url, "city-op")
    browser.go(f"{console.url}/alerts/{target}")
    browser.driver.execute_script(
        "document.querySelector('form.act input[name=csrf]').remove()")
    browser.find("form.act button[type=submit]").click()
    browser.wait_for(lambda: browser.find("h1").text == "错误")
    assert "已拒绝" in browser.text(".error")
    assert _state(console, target) == ("raised", None)
    assert _audit(console, target) == []


def test_a_script_in_a_note_is_shown_as_text_and_never_run(
    console: Console, browser: Browser
) -> None:
    target = console.city.pudong_positive.alert_id
    note = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    browser.sign_in(console.url, "city-op")
    browser.go(f"{console.url}/alerts/{target}")
    browser.find("#a-note").send_keys(note)
    browser.find("form.act button[type=submit]").click()
    browser.wait_for(lambda: browser.find_all(".flash"))
    assert _state(console, target)[1] == note
    for path in (f"/alerts/{target}", f"/timeline/{quote(console.city.pudong_positive.subject)}"):
        browser.go(console.url + path)
        assert note in browser.text(), path
        assert browser.driver.title != "pwned" and browser.driver.title != "1"
        assert not browser.find_all("main script, main img"), path


def test_every_page_at_desktop_and_phone_width_in_both_languages(
    console: Console, browser: Browser
) -> None:
    """Screenshots for people to look at (build/screenshots/), and each page whole: no
    horizontal overflow of the page itself at phone width (wide tables scroll in their
    box)."""
    if console.database != "sqlite":
        return  # the same pages: once is enough to look at
    pages = {"today": "/today", "alerts": "/alerts?status=all&sort=severity",
             "alert": f"/alerts/{console.city.pudong_positive.alert_id}",
             "rounds": "/rounds", "round": f"/rounds/{sample.ROUND}?all=1",
             "timeline": f"/timeline/{quote(console.city.pudong_positive.subject)}",
             "unit-timeline": f"/timeline/{quote(console.city.unit)}"}
    written: list[Path] = []

    def switch(lang: str) -> None:
        browser.find(f'.lang button[value="{lang}"]').click()
        # read by script, not through an element handle: the handle may be of the page the
        # click is leaving, which Chromium answers with an error no retry can mend
        browser.wait_for(lambda: str(browser.driver.execute_script(
            "return document.documentElement.lang")).startswith(lang))

    browser.go(f"{console.url}/login")
    for lang in ("zh", "en"):
        switch(lang)
        for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
            written.append(browser.screenshot(f"login-{lang}-{label}", size))
            assert browser.overflow <= 0, f"login ({lang}) is wider than the {label}"
    browser.sign_in(console.url, "city-op")
    for lang in ("zh", "en"):
        switch(lang)
        for name, path in pages.items():
            browser.go(console.url + path)
            for size, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
                written.append(browser.screenshot(f"{name}-{lang}-{label}", size))
                assert browser.overflow <= 0, f"{name} ({lang}) is wider than the {label}"
    assert len(written) == 2 * 2 * (len(pages) + 1)
    assert all(path.stat().st_size > 5_000 for path in written)

