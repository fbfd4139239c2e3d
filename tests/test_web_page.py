"""The dev server's web page in a real headless Chromium, driven by selenium.

Debian's ``chromium`` and ``chromium-driver`` packages (nothing is downloaded at run time). The
devices are real ``TBDeviceMqttClient`` s connected to the ``tb_devserver`` fixture; every wait
is a ``WebDriverWait`` on the page or a wait on the device's own callbacks, never a sleep.

``TB_WEB_SCREENSHOT=docs/devserver-page.png pytest tests/test_web_page.py -k screenshot`` saves
the README's screenshot of the page.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.timeout(180)

USER = "tenant@thingsboard.org"
PASSWORD = "tenant"
WAIT = 30.0  # a bound, not a delay: the CPU is shared with other builds


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, tb_devserver: Any) -> Iterator[Any]:
    """The browser on the fixture server's page; fails the test on a script error."""
    browser.get(tb_devserver.url.rstrip("/") + "/")
    yield browser
    # Failed requests (the wrong password's 401, an RPC's 504) are the network's, not errors.
    errors = [e for e in browser.get_log("browser") if e.get("source") != "network"]
    # A later server may get the same port: leave no login behind for it.
    browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")
    assert not errors, f"errors in the page's console: {errors}"


def wait(driver: Any, cond: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    def safe(d: Any) -> Any:
        try:
            return cond(d)
        except StaleElementReferenceException:
            return None

    return WebDriverWait(driver, timeout).until(safe, f"timed out waiting for {what}")


def click_when_settled(driver: Any, selector: str) -> None:
    """Clicks ``selector``, finding it again if a live update re-rendered it meanwhile."""
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True, selector)


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element(By.ID, element_id)


def login(driver: Any) -> None:
    wait(driver, lambda d: by_id(d, "login-username").is_displayed(), "the login form")
    for field, text in (("login-username", USER), ("login-password", PASSWORD)):
        by_id(driver, field).clear()
        by_id(driver, field).send_keys(text)
    by_id(driver, "login-submit").click()
    wait(driver, lambda d: by_id(d, "app-view").is_displayed(), "the device list")
    wait(driver, lambda d: "Live" in by_id(d, "live-state").text, "the live stream")


def device_row(driver: Any, name: str) -> Any:
    rows = driver.find_elements(By.CSS_SELECTOR, f'#device-rows tr[data-name="{name}"]')
    return rows[0] if rows else None


def open_device(driver: Any, name: str) -> None:
    wait(driver, lambda d: device_row(d, name), f"the row of {name}").click()
    wait(driver, lambda d: by_id(d, "device-name").text == name, f"the details of {name}")


def open_tab(driver: Any, tab: str) -> None:
    by_id(driver, f"tab-{tab}").click()
    wait(driver, lambda d: by_id(d, f"panel-{tab}").is_displayed(), f"the {tab} tab")


def telemetry_value(driver: Any, key: str) -> str | None:
    cells = driver.find_elements(By.CSS_SELECTOR, f'#telemetry-rows tr[data-key="{key}"] .value')
    return cells[0].text if cells else None


def chart_points(driver: Any) -> int:
    return int(by_id(driver, "telemetry-chart").get_attribute("data-points") or 0)


class Device:
    """A real client of the dev server, pumped on its own thread so callbacks run while the
    test drives the browser."""

    def __init__(self, server: Any, name: str, **kwargs: Any) -> None:
        self.token = server.add_device(name)
        self.client = TBDeviceMqttClient(
            server.host,
            server.port,
            access_token=self.token,
            client_id="web-" + uuid.uuid4().hex[:10],
            **kwargs,
        )
        self.attribute_updates: list[dict] = []
        self.rpc_requests: list[tuple[Any, Any]] = []
        self.changed = threading.Condition()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def connect(self) -> Device:
        assert self.client.connect(timeout=10) is not None, self.client.last_error
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()
        return self

    def _pump(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):
                self.client.wait_for_msg(timeout=0.2)

    def close(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(10)
        with contextlib.suppress(Exception):
            self.client.disconnect()

    def record_attributes(self) -> None:
        def on_update(result: Any, _exc: Any) -> None:
            with self.changed:
                self.attribute_updates.append(result)
                self.changed.notify_all()

        self.client.subscribe_to_all_attributes(on_update)

    def answer_rpcs(self, reply: Callable[[str, Any], Any]) -> None:
        def handler(request_id: Any, body: Any) -> None:
            with self.changed:
                self.rpc_requests.append((request_id, body))
                self.changed.notify_all()
            self.client.send_rpc_reply(request_id, reply(body["method"], body.get("params")))

        self.client.set_server_side_rpc_request_handler(handler)

    def wait_until(self, pred: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (result := pred()):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}"
                self.changed.wait(left)
        return result


@pytest.fixture
def devices(tb_devserver: Any) -> Iterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(name: str, connect: bool = True, **kwargs: Any) -> Device:
        device = Device(tb_devserver, name, **kwargs)
        made.append(device)
        return device.connect() if connect else device

    yield make
    for device in made:
        device.close()


# -- login ---------------------------------------------------------------------------------------


def test_wrong_password_is_refused_then_the_tenant_logs_in(page):
    wait(page, lambda d: by_id(d, "login-username").is_displayed(), "the login form")
    by_id(page, "login-username").send_keys(USER)
    by_id(page, "login-password").send_keys("wrong")
    by_id(page, "login-submit").click()
    error = wait(page, lambda d: by_id(d, "login-error").is_displayed(), "the login error")
    assert error and "Invalid username or password" in by_id(page, "login-error").text
    assert not by_id(page, "app-view").is_displayed()

    by_id(page, "login-password").clear()
    by_id(page, "login-username").clear()
    login(page)
    assert by_id(page, "user-email").text == USER
    # The token lives in sessionStorage: a reload stays logged in.
    page.refresh()
    wait(page, lambda d: by_id(d, "app-view").is_displayed(), "the page after a reload")
    assert not by_id(page, "login-view").is_displayed()
    by_id(page, "logout").click()
    wait(page, lambda d: by_id(d, "login-view").is_displayed(), "the login form after logout")


def test_page_loads_only_its_own_files(page, tb_devserver):
    """No CDN, no internet: every resource the page fetched came from the dev server, and no
    file it is made of names another host."""
    login(page)
    origin = tb_devserver.url.rstrip("/")
    resources = page.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    statics = [r for r in resources if "/static/" in r]
    assert {r.rsplit("/", 1)[1] for r in statics} >= {"app.js", "app.css", "chart.js"}
    assert all(r.startswith(origin + "/") for r in resources), resources
    for name in ("", "static/app.css") + tuple(
        "static/" + r.rsplit("/", 1)[1] for r in statics if r.endswith(".js")
    ):
        text = page.execute_script(
            "return fetch(arguments[0]).then((r) => r.text())", f"{origin}/{name}"
        )
        assert text and "http://" not in text and "https://" not in text, name


def test_a_rejected_token_is_refreshed_once_and_a_lost_session_shows_the_login(page, devices):
    alpha = devices("Alpha", connect=False)
    devices("Beta", connect=False)
    login(page)
    # The access token stops working (as when it expires): the page's calls get 401 at once,
    # share one refresh (spec 3.3) and go on with the new token, stream included.
    page.execute_script("sessionStorage.setItem('tb.token', 'garbage')")
    open_device(page, "Alpha")
    wait(page, lambda d: by_id(d, "device-token").text == alpha.token, "the credentials")
    assert page.execute_script("return sessionStorage.getItem('tb.token')") != "garbage"
    refreshes = page.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter((e) => e.name.endsWith('/api/auth/token')).length"
    )
    assert refreshes == 1
    assert not by_id(page, "login-view").is_displayed()
    wait(page, lambda d: by_id(d, "live-state").text == "Live", "the stream again")

    # Both tokens rejected: the session is lost and the login form says so.
    page.execute_script(
        "sessionStorage.setItem('tb.token', 'garbage');"
        "sessionStorage.setItem('tb.refreshToken', 'garbage')"
    )
    device_row(page, "Beta").click()
    wait(page, lambda d: by_id(d, "login-view").is_displayed(), "the login form")
    assert "expired" in by_id(page, "login-error").text
    login(page)


# -- adding and deleting devices -----------------------------------------------------------------


def test_device_added_on_the_page_connects_with_its_token_and_is_deleted(page, tb_devserver):
    login(page)
    by_id(page, "device-add").click()
    by_id(page, "new-device-name").send_keys("Kiosk")
    by_id(page, "new-device-token").send_keys("KIOSK_TOKEN")
    by_id(page, "new-device-save").click()
    wait(page, lambda d: by_id(d, "device-name").text == "Kiosk", "the new device's details")
    wait(page, lambda d: device_row(d, "Kiosk"), "the new device's row")
    wait(page, lambda d: by_id(d, "device-token").text == "KIOSK_TOKEN", "its access token")
    assert "Kiosk" in tb_devserver.devices()

    client = TBDeviceMqttClient(tb_devserver.host, tb_devserver.port, access_token="KIOSK_TOKEN")
    try:
        assert client.connect(timeout=10) is not None, client.last_error
        wait(page, lambda d: by_id(d, "device-state").text == "Active", "the device online")
    finally:
        client.disconnect()

    # A name already taken: ThingsBoard's message, nothing created.
    by_id(page, "device-add").click()
    by_id(page, "new-device-name").send_keys("Kiosk")
    by_id(page, "new-device-save").click()
    wait(page, lambda d: by_id(d, "new-device-error").is_displayed(), "the duplicate error")
    assert "already exists" in by_id(page, "new-device-error").text
    by_id(page, "new-device-cancel").click()

    # Delete asks for a second click, then the device is gone from the page and the server.
    by_id(page, "device-delete").click()
    assert "again" in by_id(page, "device-delete").text
    assert "Kiosk" in tb_devserver.devices()
    by_id(page, "device-delete").click()
    wait(page, lambda d: by_id(d, "device-none").is_displayed(), "the details to close")
    wait(page, lambda d: device_row(d, "Kiosk") is None, "the row to go")
    assert "Kiosk" not in tb_devserver.devices()


# -- devices, telemetry and the chart ------------------------------------------------------------


def test_device_comes_online_and_its_telemetry_reaches_table_and_chart(page, tb_devserver, devices):
    device = devices("Thermostat", connect=False)
    login(page)
    row = wait(page, lambda d: device_row(d, "Thermostat"), "the device row")
    assert row.find_element(By.CSS_SELECTOR, ".state").text == "Inactive"
    assert row.find_element(By.CSS_SELECTOR, ".activity").text == "never"

    device.connect()
    wait(
        page,
        lambda d: (
            device_row(d, "Thermostat").find_element(By.CSS_SELECTOR, ".state").text == "Active"
        ),
        "the device to show Active",
    )

    # History first: points sent before the device is opened come from the REST range query.
    now = int(time.time() * 1000)
    history = [20.0, 20.5, 21.0, 20.75]
    for i, value in enumerate(history):
        ts = now - (len(history) - i) * 20_000
        device.client.send_telemetry(
            {"ts": ts, "values": {"temperature": value, "humidity": 40 + i}}
        )
    device.client.send_telemetry({"status": "ok"})
    assert device.client.flush(10)
    tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("Thermostat").get("status"), 10)

    open_device(page, "Thermostat")
    wait(page, lambda d: telemetry_value(d, "temperature") == "20.75", "the latest temperature")
    assert telemetry_value(page, "status") == "ok"
    wait(page, lambda d: chart_points(d) == 2 * len(history), "the history in the chart")
    chart = by_id(page, "telemetry-chart")
    assert set(chart.get_attribute("data-series").split(",")) == {"temperature", "humidity"}
    assert "status" not in chart.get_attribute("data-series")  # not numeric

    # Then live: each new point reaches the table and the chart without a reload.
    for value in (22.5, 23.25):
        device.client.send_telemetry({"temperature": value})
        text = str(value)
        wait(page, lambda d, t=text: telemetry_value(d, "temperature") == t, f"{text} live")
    wait(page, lambda d: chart_points(d) == 2 * len(history) + 2, "the live points in the chart")
    legend = page.find_elements(By.CSS_SELECTOR, "#chart-legend label")
    assert sorted(label.get_attribute("data-key") for label in legend) == [
        "humidity",
        "temperature",
    ]

    # Hiding a series takes its points out of the chart.
    page.find_element(By.CSS_SELECTOR, '#chart-legend label[data-key="humidity"] input').click()
    wait(page, lambda d: chart_points(d) == len(history) + 2, "humidity hidden")

    # The device disconnecting shows at once (ThingsBoard's inactivity is only a fallback).
    device.close()
    wait(page, lambda d: by_id(d, "device-state").text == "Inactive", "the device to go Inactive")


def test_live_log_shows_what_the_device_sent(page, devices):
    device = devices("Logger")
    login(page)
    open_device(page, "Logger")
    open_tab(page, "log")
    device.client.send_telemetry({"counter": 7})
    device.client.send_attributes({"model": "ACME-1"})

    def entries(d: Any) -> list[tuple[str, str, str]]:
        return [
            (
                li.get_attribute("data-dir"),
                li.find_element(By.CSS_SELECTOR, ".topic").text,
                li.find_element(By.CSS_SELECTOR, ".payload").text,
            )
            for li in d.find_elements(By.CSS_SELECTOR, "#log-list li")
        ]

    wait(page, lambda d: len(entries(d)) >= 2, "two log entries")
    log = entries(page)
    assert ("up", "v1/devices/me/telemetry", '{"counter":7}') in log
    assert ("up", "v1/devices/me/attributes", '{"model":"ACME-1"}') in log
    by_id(page, "log-filter").send_keys("attributes")
    wait(page, lambda d: [e[1] for e in entries(d)] == ["v1/devices/me/attributes"], "the filter")


def test_a_restart_on_the_same_data_folder_shows_the_same_devices_and_history(browser, tmp_path):
    """Persistence (``DevServer(data=...)``) seen on the page: devices, telemetry history and
    attributes stored before a restart are shown by the new server's page."""
    from thingsboard_sdk.devserver import DevServer

    store = tmp_path / "store"
    now = int(time.time() * 1000)
    with DevServer(data=store) as first:
        device = Device(first, "Keeper").connect()
        try:
            for i in range(5):
                ts = now - (5 - i) * 30_000
                device.client.send_telemetry({"ts": ts, "values": {"level": 10 * i}})
            device.client.send_attributes({"serial": "K-7"})
            assert device.client.flush(10)
            first.wait_for(lambda: first.client_attributes("Keeper").get("serial"), 10)
        finally:
            device.close()
    with DevServer(data=store) as second:
        browser.get(second.url.rstrip("/") + "/")
        try:
            login(browser)
            row = wait(browser, lambda d: device_row(d, "Keeper"), "the stored device")
            assert row.find_element(By.CSS_SELECTOR, ".state").text == "Inactive"
            open_device(browser, "Keeper")
            wait(browser, lambda d: telemetry_value(d, "level") == "40", "the stored latest value")
            wait(browser, lambda d: chart_points(d) == 5, "the stored history in the chart")
            open_tab(browser, "attributes")
            cell = '#attributes-rows tr[data-key="serial"] .value'
            wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, cell).text == "K-7", "serial")
        finally:
            browser.execute_script("sessionStorage.clear()")
            browser.get("about:blank")


# -- attributes ----------------------------------------------------------------------------------


def test_shared_attribute_set_on_the_page_fires_the_device_callback(page, tb_devserver, devices):
    device = devices("Lamp")
    device.record_attributes()
    device.client.send_attributes({"model": "ACME-1"})
    assert device.client.flush(10)
    login(page)
    open_device(page, "Lamp")
    open_tab(page, "attributes")

    # Client attributes: what the device sent, read-only.
    wait(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#attributes-rows tr[data-key="model"]'),
        "the client attribute",
    )
    row = page.find_element(By.CSS_SELECTOR, '#attributes-rows tr[data-key="model"]')
    assert row.find_element(By.CSS_SELECTOR, ".value").text == "ACME-1"
    assert not row.find_elements(By.CSS_SELECTOR, "button")
    assert not by_id(page, "attr-form").is_displayed()

    # Shared: add a double; the device's callback gets exactly that key and value.
    by_id(page, "attr-scope-shared").click()
    wait(page, lambda d: by_id(d, "attr-form").is_displayed(), "the attribute form")
    by_id(page, "attr-key").send_keys("targetTemp")
    Select(by_id(page, "attr-type")).select_by_value("double")
    by_id(page, "attr-value").send_keys("22.5")
    by_id(page, "attr-save").click()
    device.wait_until(lambda: {"targetTemp": 22.5} in device.attribute_updates, "the callback")
    assert tb_devserver.shared_attributes("Lamp") == {"targetTemp": 22.5}
    shared_row = '#attributes-rows tr[data-key="targetTemp"] .value'
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, shared_row).text == "22.5", "the row")

    # Edit it to a JSON value, then delete it: the device hears both.
    click_when_settled(page, '#attributes-rows tr[data-key="targetTemp"] .attr-edit')
    assert by_id(page, "attr-key").get_attribute("value") == "targetTemp"
    Select(by_id(page, "attr-type")).select_by_value("json")
    by_id(page, "attr-value").clear()
    by_id(page, "attr-value").send_keys('{"day": 21, "night": 17}')
    by_id(page, "attr-save").click()
    device.wait_until(
        lambda: {"targetTemp": {"day": 21, "night": 17}} in device.attribute_updates, "the edit"
    )
    click_when_settled(page, '#attributes-rows tr[data-key="targetTemp"] .attr-delete')
    device.wait_until(
        lambda: any("targetTemp" in u.get("deleted", []) for u in device.attribute_updates),
        "the deletion",
    )
    wait(
        page,
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, '#attributes-rows tr[data-key="targetTemp"]')
        ),
        "the row to go",
    )
    assert tb_devserver.shared_attributes("Lamp") == {}

    # A value that does not fit its type is refused on the page, nothing is sent.
    by_id(page, "attr-key").send_keys("count")
    Select(by_id(page, "attr-type")).select_by_value("integer")
    by_id(page, "attr-value").send_keys("1.5")
    by_id(page, "attr-save").click()
    wait(page, lambda d: by_id(d, "attr-error").is_displayed(), "the type error")
    assert "not an integer" in by_id(page, "attr-error").text
    assert tb_devserver.shared_attributes("Lamp") == {}


# -- RPC -----------------------------------------------------------------------------------------


def test_two_way_rpc_from_the_console_shows_the_device_reply(page, devices):
    device = devices("Relay")
    device.answer_rpcs(lambda method, params: {"method": method, "got": params, "ok": True})
    login(page)
    open_device(page, "Relay")
    open_tab(page, "rpc")
    by_id(page, "rpc-method").send_keys("setRelay")
    by_id(page, "rpc-params").clear()
    by_id(page, "rpc-params").send_keys('{"channel": 2, "on": true}')
    by_id(page, "rpc-send").click()
    wait(page, lambda d: by_id(d, "rpc-status").text == "200 OK", "the RPC to succeed")
    reply = json.loads(by_id(page, "rpc-result").text)
    assert reply == {"method": "setRelay", "got": {"channel": 2, "on": True}, "ok": True}
    assert device.rpc_requests[-1][1] == {
        "method": "setRelay",
        "params": {"channel": 2, "on": True},
    }
    # The stream's rpc events fill the request table.
    wait(
        page,
        lambda d: (
            "SUCCESSFUL" in [c.text for c in d.find_elements(By.CSS_SELECTOR, "#rpc-rows .status")]
        ),
        "the request table",
    )

    # Invalid params never leave the page.
    by_id(page, "rpc-params").clear()
    by_id(page, "rpc-params").send_keys("{channel: }")
    sent = len(device.rpc_requests)
    by_id(page, "rpc-send").click()
    wait(page, lambda d: by_id(d, "rpc-status").text == "Invalid params", "the params error")
    assert len(device.rpc_requests) == sent

    # One-way: the device gets the request, the page shows no reply but the delivery.
    by_id(page, "rpc-oneway").click()
    by_id(page, "rpc-method").clear()
    by_id(page, "rpc-method").send_keys("blink")
    by_id(page, "rpc-params").clear()
    by_id(page, "rpc-params").send_keys("3")
    by_id(page, "rpc-send").click()
    device.wait_until(lambda: len(device.rpc_requests) == sent + 1, "the one-way request")
    assert device.rpc_requests[-1][1] == {"method": "blink", "params": 3}
    wait(page, lambda d: "one-way" in by_id(d, "rpc-result").text, "the one-way result")
    assert by_id(page, "rpc-status").text == "200 OK"


def test_rpc_to_an_offline_device_shows_the_error_status(page, devices):
    devices("Sleeper", connect=False)
    login(page)
    open_device(page, "Sleeper")
    open_tab(page, "rpc")
    by_id(page, "rpc-method").send_keys("wake")
    by_id(page, "rpc-timeout").clear()
    by_id(page, "rpc-timeout").send_keys("1000")
    by_id(page, "rpc-send").click()
    # ThingsBoard answers an undelivered two-way RPC with 504 and an empty body (spec 7.4).
    wait(page, lambda d: by_id(d, "rpc-status").text.startswith("504"), "the 504")
    assert "err" in by_id(page, "rpc-result").get_attribute("class")
    assert by_id(page, "rpc-result").text


# -- firmware ------------------------------------------------------------------------------------


def test_firmware_upload_and_assign_show_the_device_progress(page, tb_devserver, devices, tmp_path):
    image = os.urandom(20_000)
    source = tmp_path / "lamp-1.1.bin"
    source.write_bytes(image)
    target_dir = tmp_path / "device"
    target_dir.mkdir()
    installed: list[tuple[str, dict]] = []
    device = devices(
        "Lamp FW",
        firmware_dir=str(target_dir),
        chunk_size=4096,
        on_firmware_update=lambda path, info: installed.append((path, info)),
    )
    login(page)
    open_device(page, "Lamp FW")
    open_tab(page, "firmware")
    # Record every state the chip shows (they can follow each other within a frame).
    page.execute_script(
        """
        window.fwStates = [];
        new MutationObserver((records) => {
          for (const r of records) {
            for (const n of r.addedNodes) window.fwStates.push(n.textContent);
          }
        }).observe(document.getElementById('fw-state'), {childList: true});
        """
    )
    by_id(page, "fw-title").send_keys("lamp")
    by_id(page, "fw-version").send_keys("1.1")
    by_id(page, "fw-file").send_keys(str(source))
    by_id(page, "fw-upload").click()
    digest = hashlib.sha256(image).hexdigest()
    wait(page, lambda d: digest in by_id(d, "fw-upload-status").text, "the upload")
    assert Select(by_id(page, "fw-package")).first_selected_option.text == "lamp (1.1)"
    packages = page.find_elements(By.CSS_SELECTOR, "#fw-package-rows tr")
    assert [p.find_element(By.CSS_SELECTOR, "td").text for p in packages] == ["lamp"]

    by_id(page, "fw-assign").click()
    wait(page, lambda d: by_id(d, "fw-state").text == "UPDATED", "fw_state UPDATED", timeout=60)
    # The states shown only move forward, through the device's DOWNLOADING to UPDATED.
    states = page.execute_script("return window.fwStates")
    order = ["QUEUED", "INITIATED", "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    seen = [s for s in states if s in order]
    assert seen == sorted(seen, key=order.index), states
    assert {"DOWNLOADING", "UPDATED"} <= set(seen), states
    steps = page.find_elements(By.CSS_SELECTOR, "#fw-steps li")
    assert [s.get_attribute("class") for s in steps] == ["done"] * len(steps)
    assert by_id(page, "fw-progress").get_attribute("value") == "100"
    assert by_id(page, "fw-current").text == "lamp 1.1"
    assert "lamp" in by_id(page, "fw-target").text

    device.wait_until(lambda: installed, "the device's update callback")
    assert Path(installed[0][0]).read_bytes() == image
    assert tb_devserver.shared_attributes("Lamp FW")["fw_checksum"] == digest


# -- 1,000 devices -------------------------------------------------------------------------------


def test_a_thousand_devices_are_paged_searched_and_live(page, tb_devserver, devices):
    for i in range(1000):
        tb_devserver.add_device(f"sensor-{i:04d}")
    login(page)
    wait(page, lambda d: by_id(d, "device-count").text == "1,000 devices", "the count")
    rows = page.find_elements(By.CSS_SELECTOR, "#device-rows tr")
    page_size = int(Select(by_id(page, "device-page-size")).first_selected_option.text)
    assert len(rows) == page_size  # one page in the DOM, not a thousand rows
    assert [r.get_attribute("data-name") for r in rows[:2]] == ["sensor-0000", "sensor-0001"]
    assert by_id(page, "device-page-info").text == f"1 / {1000 // page_size}"

    by_id(page, "device-next").click()
    wait(page, lambda d: by_id(d, "device-page-info").text.startswith("2 /"), "page 2")
    first = f"sensor-{page_size:04d}"
    wait(
        page,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#device-rows tr").get_attribute("data-name") == first
        ),
        "page 2 rows",
    )

    Select(by_id(page, "device-page-size")).select_by_visible_text("100")
    wait(page, lambda d: by_id(d, "device-page-info").text == "1 / 10", "100 per page")
    assert len(page.find_elements(By.CSS_SELECTOR, "#device-rows tr")) == 100

    # Search narrows on the server; a device of the thousand comes online in the list.
    by_id(page, "device-search").send_keys("sensor-0777")
    wait(
        page, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#device-rows tr")) == 1, "the search"
    )
    assert by_id(page, "device-count").text == "1 device"
    live = devices("sensor-0777-live", connect=False)
    wait(
        page,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#device-rows tr")) == 2,
        "the new device",
    )
    live.connect()
    wait(
        page,
        lambda d: (
            device_row(d, "sensor-0777-live").find_element(By.CSS_SELECTOR, ".state").text
            == "Active"
        ),
        "the new device online",
    )
    Select(by_id(page, "device-filter")).select_by_value("true")
    wait(
        page,
        lambda d: (
            [
                r.get_attribute("data-name")
                for r in d.find_elements(By.CSS_SELECTOR, "#device-rows tr")
            ]
            == ["sensor-0777-live"]
        ),
        "the active filter",
    )


# -- the chart itself ----------------------------------------------------------------------------

CHART_SCRIPT = """
const done = arguments[arguments.length - 1];
const end = new Date(2026, 0, 1, 12, 5, 0).getTime();  // local time
const canvas = document.createElement('canvas');
canvas.style.cssText = 'position:fixed;left:0;top:0;width:600px;height:200px';
document.body.append(canvas);
const texts = [];
const ctx = canvas.getContext('2d');
const fillText = ctx.fillText.bind(ctx);
ctx.fillText = (t, x, y) => { texts.push(t); fillText(t, x, y); };
const chart = new TB.TimeChart(canvas, {windowMs: 5 * 60000, now: () => end});
chart.merge('a', [[end - 240000, 3], [end - 120000, 97], [end - 1000, 50]]);
chart.merge('b', [[end - 400000, 1000], [end - 60000, 20]]);  // the first is outside the window
requestAnimationFrame(() => requestAnimationFrame(() => {
  const out = {texts: texts.slice(), points: canvas.dataset.points, width: canvas.width,
               series: canvas.dataset.series, dpr: window.devicePixelRatio,
               steps: [97, 1, 0.3, 2500].map((s) => TB.chartMath.niceStep(s, 4))};
  canvas.style.width = '300px';  // a resize redraws at the new size
  new ResizeObserver(() => requestAnimationFrame(() => {
    out.resized = canvas.width;
    canvas.remove();
    done(out);
  })).observe(canvas);
}));
"""


def test_chart_draws_axes_time_labels_and_several_series_and_follows_resize(page):
    login(page)
    out = page.execute_async_script(CHART_SCRIPT)
    assert out["series"] == "a,b"
    assert out["points"] == "4"  # b's point before the window is not counted
    assert out["width"] == round(600 * out["dpr"])
    assert out["resized"] == round(300 * out["dpr"])
    # y: 3..97 on ~3 ticks gives 0, 50, 100; x: one label a minute in local time, the last
    # (12:05) would spill over the right edge and is left out.
    texts = list(dict.fromkeys(out["texts"]))  # the first drawing's labels, in order
    assert [t for t in texts if t in ("0", "50", "100")] == ["0", "50", "100"]
    assert [t for t in texts if ":" in t] == ["12:00", "12:01", "12:02", "12:03", "12:04"]
    assert out["steps"] == [25, 0.25, 0.1, 1000]


@pytest.mark.skipif(not os.environ.get("TB_WEB_SCREENSHOT"), reason="TB_WEB_SCREENSHOT not set")
def test_screenshot(page, tb_devserver, devices):
    """The README's picture: a device with a quarter of an hour of telemetry."""
    import math

    device = devices("Thermostat A1")
    devices("Boiler", connect=False)
    devices("Pump station 3")
    device.client.send_attributes({"model": "TH-200", "fw": "1.4.2"})
    now = int(time.time() * 1000)
    n = 340
    for i in range(n):
        ts = now - (n - i) * 2500
        values = {
            "temperature": round(21 + 1.5 * math.sin(i / 30) + 0.2 * math.sin(i / 3), 2),
            "humidity": round(46 + 6 * math.cos(i / 45), 1),
            "setpoint": 22.0 if i < 200 else 21.0,
        }
        device.client.send_telemetry({"ts": ts, "values": values})
    device.client.send_telemetry({"status": "heating"})
    assert device.client.flush(20)
    tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("Thermostat A1").get("status"), 10)
    metrics = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        login(page)
        open_device(page, "Thermostat A1")
        Select(by_id(page, "chart-window")).select_by_value("900000")
        wait(page, lambda d: chart_points(d) >= 3 * n, "the history in the chart")
        page.execute_script("document.activeElement.blur()")
        page.save_screenshot(os.environ["TB_WEB_SCREENSHOT"])
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
