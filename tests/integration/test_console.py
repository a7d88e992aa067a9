"""The billing team's console on two real workers: any worker shows any account, only behind a
token, every decision state, abuse links, the queue following decisions, hostile data escaped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from tests.integration.conftest import Detector, start_detector
from tests.support.browser import chromium_session, console_errors, save_screenshot
from tests.support.records import charge, hit, refund, trial
from tests.support.worker import TOKEN

pytestmark = pytest.mark.integration

CONSOLE_TOKEN = "console-read-only-token"
AT = "2026-03-01T10:00:00Z"
SCRIPT_URL = "https://shop.example/<script>document.title='pwned'</script>"


@pytest.fixture(scope="module")
def console(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    extra = {"USAGE_DETECTOR_CONSOLE_TOKEN": CONSOLE_TOKEN}
    yield from start_detector(bootstrap_servers, tmp_path_factory.mktemp("console"), workers=2, extra_env=extra)


@pytest.fixture(scope="module")
def accounts(console: Detector) -> dict[str, str]:
    """An account in every decision state (and one whose usage came from a hostile page), decided."""
    tag = uuid.uuid4().hex[:6]
    ids = {state: f"cons-{tag}-{state}" for state in ("eligible", "discretionary", "refunded", "ineligible", "no_charge", "first", "hostile")}
    t = console.topics
    sends: list[tuple[str, dict[str, Any]]] = [
        (t.billing, trial(ids["no_charge"], AT)),
        (t.billing, trial(ids["eligible"], AT)),
        (t.billing, charge(ids["eligible"], "2026-03-15T10:00:00Z", f"ch-{tag}-1")),
        (t.billing, trial(ids["discretionary"], AT)),
        (t.hits, hit(ids["discretionary"], "2026-03-02T10:00:00Z", page_url="https://shop.example/cart")),
        (t.billing, charge(ids["discretionary"], "2026-03-15T10:00:00Z", f"ch-{tag}-2")),
        (t.billing, trial(ids["refunded"], AT)),
        (t.billing, charge(ids["refunded"], "2026-03-15T10:00:00Z", f"ch-{tag}-3")),
        (t.billing, refund(ids["refunded"], "2026-03-16T10:00:00Z", f"ch-{tag}-3")),
        # the same card as an earlier trial: repeated-trial abuse
        (t.billing, trial(ids["first"], "2026-02-01T10:00:00Z", card_fingerprint=f"card-{tag}")),
        (t.billing, trial(ids["ineligible"], AT, card_fingerprint=f"card-{tag}")),
        (t.billing, charge(ids["ineligible"], "2026-03-15T10:00:00Z", f"ch-{tag}-4")),
        (t.billing, trial(ids["hostile"], AT)),
        (t.hits, hit(ids["hostile"], "2026-03-02T10:00:00Z", page_url=SCRIPT_URL)),
    ]
    for topic, record in sends:
        console.producer.send(topic, record, key=record["account_id"])
    console.producer.flush()
    expected = {"eligible": "eligible", "discretionary": "discretionary", "refunded": "refunded", "ineligible": "ineligible", "no_charge": "no_charge"}

    def decided() -> bool:
        latest = {}
        for record in console.tail.records(t.eligibility):
            if record.value["version"] >= latest.get(record.value["account_id"], {"version": 0})["version"]:
                latest[record.value["account_id"]] = record.value
        return all(latest.get(ids[name], {}).get("state") == state for name, state in expected.items())

    console.tail.wait_for("a decision in every state", decided, timeout=60)
    console.tail.wait_for("the hostile page's usage", lambda: console.tail.records(t.usage, ids["hostile"]))
    return ids


@contextmanager
def logged_in(worker_url: str, token: str = CONSOLE_TOKEN) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker_url, timeout=10) as client:
        answer = client.post("/console/login", data={"token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text
        yield client


def test_nothing_is_shown_without_a_valid_token(console: Detector, accounts: dict[str, str]) -> None:
    worker = console.workers[0].url
    with httpx.Client(base_url=worker, timeout=10) as stranger:
        for path in ("/console", f"/console/accounts/{accounts['eligible']}", "/console/accounts?id=x"):
            answer = stranger.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, "/console/login"), path
        assert stranger.get("/console/queue.json").status_code == 401
        refused = stranger.post("/console/login", data={"token": "not-the-token"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        assert accounts["eligible"] not in refused.text
        forged = stranger.get(f"/console/accounts/{accounts['eligible']}", headers={"Cookie": "usage_detector_console=9999999999.00ff"})
        assert forged.status_code == 303
    with logged_in(worker, TOKEN) as api:  # the API token opens the console too
        assert api.get("/console").status_code == 200


@pytest.mark.parametrize("state", ["eligible", "discretionary", "refunded", "ineligible", "no_charge"])
def test_every_worker_shows_every_account_with_its_decision(console: Detector, accounts: dict[str, str], state: str) -> None:
    for worker in console.workers:  # one of them holds the account, the other forwards
        with logged_in(worker.url) as client:
            answer = client.get(f"/console/accounts/{accounts[state]}")
            assert answer.status_code == 200, answer.text
            text = unescape(answer.text)
            assert accounts[state] in text and f"state-{state}" in text
            assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_an_abuse_link_leads_to_the_earlier_account(console: Detector, accounts: dict[str, str]) -> None:
    with logged_in(console.workers[1].url) as client:
        later = client.get(f"/console/accounts/{accounts['ineligible']}").text
        assert f'<a href="/console/accounts/{accounts["first"]}">' in later and "shares card_fingerprint" in later
        earlier = client.get(f"/console/accounts/{accounts['first']}")
        assert earlier.status_code == 200 and accounts["first"] in earlier.text


def test_a_hostile_page_url_is_shown_as_text(console: Detector, accounts: dict[str, str]) -> None:
    with logged_in(console.workers[0].url) as client:
        page = client.get(f"/console/accounts/{accounts['hostile']}").text
    assert "<script>document.title" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page


def test_the_queue_follows_decisions(console: Detector, accounts: dict[str, str]) -> None:
    with logged_in(console.workers[1].url) as client:
        def queue() -> dict[str, Any]:
            answer = client.get("/console/queue.json")
            assert answer.status_code == 200
            return answer.json()

        def states() -> dict[str, str]:
            return {row["account_id"]: row["state"] for row in queue()["rows"]}

        console.tail.wait_for("the queue read", lambda: states().get(accounts["eligible"]) == "eligible")
        first = queue()
        assert states()[accounts["discretionary"]] == "discretionary"
        assert accounts["refunded"] not in states() and accounts["no_charge"] not in states()
        # Usage begins: the refund to process becomes a case to review.
        console.producer.send(console.topics.hits, hit(accounts["eligible"], "2026-03-20T10:00:00Z"), key=accounts["eligible"])
        console.producer.flush()
        console.tail.wait_for("the queue to change", lambda: states().get(accounts["eligible"]) == "discretionary")
        assert queue()["revision"] > first["revision"]
        filtered = client.get("/console/queue.json", params={"state": "eligible", "q": accounts["eligible"]}).json()
        assert filtered["rows"] == []


# ---- in a real browser: headless Chromium from Debian (tests/support/browser.py) ----------------

LOGIN_TIMEOUT_S = 10
# Pages are replaced as they load and the queue's rows as they update: an element may go stale.
PASSING = (StaleElementReferenceException, NoSuchElementException)


def wait(driver: Chrome, seconds: float = LOGIN_TIMEOUT_S) -> WebDriverWait[Chrome]:
    return WebDriverWait(driver, seconds, ignored_exceptions=PASSING)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    yield from chromium_session(1280, 900)


def screenshot(driver: Chrome, tmp_path: Path, name: str) -> None:
    """Into the test's folder, and into CONSOLE_SCREENSHOTS when set (the README's pictures: docs/console)."""
    save_screenshot(driver, tmp_path / f"{name}.png")
    if folder := os.environ.get("CONSOLE_SCREENSHOTS"):
        save_screenshot(driver, Path(folder) / f"{name}.png")


def log_in(driver: Chrome, worker_url: str, token: str) -> None:
    console_errors(driver)  # what earlier tests left in the log
    driver.delete_all_cookies()
    driver.get(f"{worker_url}/console")
    field = driver.find_element(By.ID, "token")  # the login page, whatever was asked for
    field.send_keys(token, Keys.ENTER)  # by keyboard


def look_up(driver: Chrome, account_id: str) -> None:
    search = wait(driver).until(lambda d: d.find_element(By.ID, "account-search"))  # once a page after the login is there
    search.send_keys(account_id, Keys.ENTER)
    wait(driver).until(lambda d: account_id in d.find_element(By.TAG_NAME, "h1").text)


def test_the_browser_shows_nothing_with_a_wrong_or_missing_token(console: Detector, accounts: dict[str, str], browser: Chrome, tmp_path: Path) -> None:
    worker = console.workers[0].url
    browser.delete_all_cookies()
    browser.get(f"{worker}/console/accounts/{accounts['eligible']}")
    assert browser.current_url == f"{worker}/console/login" and accounts["eligible"] not in browser.page_source
    screenshot(browser, tmp_path, "login")
    log_in(browser, worker, "a-wrong-token")
    refusal = wait(browser).until(lambda d: d.find_elements(By.CLASS_NAME, "error"))
    assert refusal[0].text == "That token opens nothing here."
    assert browser.get_cookies() == []
    browser.get(f"{worker}/console")
    assert browser.current_url == f"{worker}/console/login"


def test_a_billing_person_looks_up_an_account_of_every_decision_state(
    console: Detector, accounts: dict[str, str], browser: Chrome, tmp_path: Path
) -> None:
    log_in(browser, console.workers[1].url, CONSOLE_TOKEN)
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Queue")
    words = {"eligible": "eligible: refund to process", "discretionary": "discretionary: to review",
             "refunded": "refunded", "ineligible": "ineligible", "no_charge": "no charge yet"}
    for state in ("refunded", "ineligible", "no_charge", "discretionary"):  # the eligible one is the queue test's
        look_up(browser, accounts[state])
        assert browser.find_element(By.CSS_SELECTOR, "section .state").text == words[state]
        assert "because" in browser.find_element(By.TAG_NAME, "section").text or state == "no_charge"
    screenshot(browser, tmp_path, "account")
    assert console_errors(browser) == []


def test_an_abuse_link_in_the_browser_leads_to_the_earlier_trial(console: Detector, accounts: dict[str, str], browser: Chrome) -> None:
    log_in(browser, console.workers[0].url, CONSOLE_TOKEN)
    look_up(browser, accounts["ineligible"])
    browser.find_element(By.LINK_TEXT, accounts["first"]).click()
    wait(browser).until(lambda d: accounts["first"] in d.find_element(By.TAG_NAME, "h1").text)


def test_a_script_in_a_page_url_is_text_and_never_runs(console: Detector, accounts: dict[str, str], browser: Chrome, tmp_path: Path) -> None:
    log_in(browser, console.workers[1].url, CONSOLE_TOKEN)
    look_up(browser, accounts["hostile"])
    assert SCRIPT_URL in browser.find_element(By.TAG_NAME, "main").text  # shown as it came, as text
    assert browser.title == f"Account {accounts['hostile']} · usage detector"  # the script would have set it
    assert browser.find_elements(By.CSS_SELECTOR, "main script") == []
    assert console_errors(browser) == []  # not even an attempt the policy had to block
    browser.set_window_size(390, 844)  # a phone
    screenshot(browser, tmp_path, "account-phone")
    browser.set_window_size(1280, 900)


def test_the_queue_shows_a_new_decision_and_its_change_when_usage_begins_without_a_reload(
    console: Detector, browser: Chrome, tmp_path: Path
) -> None:
    """The eligible account of this test is also the one of that state looked up in the browser."""
    account = f"cons-{uuid.uuid4().hex[:6]}-queued"
    log_in(browser, console.workers[0].url, CONSOLE_TOKEN)
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Queue")

    def row_state(driver: Chrome) -> str | None:
        for row in driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr"):
            if row.find_element(By.TAG_NAME, "a").text == account:
                return row.find_element(By.CLASS_NAME, "state").text
        return None

    for record in (trial(account, AT), charge(account, "2026-03-15T10:00:00Z", f"ch-{account}")):
        console.producer.send(console.topics.billing, record, key=account)
    console.producer.flush()
    wait(browser, 30).until(lambda d: row_state(d) == "eligible: refund to process")
    screenshot(browser, tmp_path, "queue")
    browser.find_element(By.LINK_TEXT, account).click()
    wait(browser).until(lambda d: account in d.find_element(By.TAG_NAME, "h1").text)
    assert browser.find_element(By.CSS_SELECTOR, "section .state").text == "eligible: refund to process"
    browser.back()
    wait(browser).until(lambda d: row_state(d) == "eligible: refund to process")
    browser.execute_script("window.notReloaded = true")
    console.producer.send(console.topics.hits, hit(account, "2026-03-20T10:00:00Z"), key=account)
    console.producer.flush()
    wait(browser, 30).until(lambda d: row_state(d) == "discretionary: to review")
    assert browser.execute_script("return window.notReloaded") is True
    assert console_errors(browser) == []
