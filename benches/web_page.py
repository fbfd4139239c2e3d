"""The dev server's web page under load: N connected devices each sending telemetry every second.

One command::

    python benches/web_page.py                          # 1,000 devices, 20 s per phase
    python benches/web_page.py --devices 200 --seconds 10

A ``DevServer`` (the Python API, with its HTTP port) in this process; ``--devices`` real
``TBDeviceMqttClient`` s connected with ``fleet.connect_all``, a thread sending each one
``{"temperature", "humidity"}`` once a second (device i at offset i/N). Headless Chromium
(Debian's ``chromium``/``chromium-driver``, selenium) logs in and is measured in two phases of
``--seconds`` each:

1. the device list (20 rows of N; the stream carries only coalesced ``device`` events);
2. one device open: its telemetry table, chart and log update live.

Per phase: the page's main-thread busy share (Chrome DevTools ``Performance.getMetrics``
``TaskDuration`` delta over wall time), stream events the page received per second (a counter
wrapped around ``EventSource`` before the page loads), and the JS heap. Then the search latency
(type a device's full name until the list shows that one row; median of 10, includes the page's
200 ms typing debounce) and the open latency (click a row until the latest telemetry table has
values; median of 5). The server's CPU share is this process's (server and senders) CPU time.
Output: progress on stderr, a markdown summary on stdout.

There is no rival to compare with here (ThingsBoard's own UI needs a ThingsBoard): the figures
are absolute, to show the page stays light with many devices.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.fleet import connect_all
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

COUNT_EVENTS = """
window.__events = 0;
const Native = window.EventSource;
window.EventSource = function (url) {
  const source = new Native(url);
  source.addEventListener('message', () => { window.__events++; });
  return source;
};
"""

SEARCH = """
const [name, done] = [arguments[0], arguments[arguments.length - 1]];
const input = document.getElementById('device-search');
const rows = document.getElementById('device-rows');
const ok = () => rows.children.length === 1 && rows.children[0].dataset.name === name;
const t0 = performance.now();
new MutationObserver((_, obs) => {
  if (ok()) { obs.disconnect(); done(performance.now() - t0); }
}).observe(rows, {childList: true});
input.value = name;
input.dispatchEvent(new Event('input'));
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    service = webdriver.ChromeService(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"
    )
    return webdriver.Chrome(service=service, options=options)


def metrics(driver: webdriver.Chrome) -> dict[str, float]:
    raw = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return {m["name"]: m["value"] for m in raw}


def phase(driver: webdriver.Chrome, seconds: float) -> dict[str, float]:
    """Main-thread busy share, events/s and heap over ``seconds`` of wall time."""
    m0, e0, t0 = metrics(driver), driver.execute_script("return window.__events"), time.time()
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    m1, e1, t1 = metrics(driver), driver.execute_script("return window.__events"), time.time()
    return {
        "busy": (m1["TaskDuration"] - m0["TaskDuration"]) / (t1 - t0),
        "script": (m1["ScriptDuration"] - m0["ScriptDuration"]) / (t1 - t0),
        "events": (e1 - e0) / (t1 - t0),
        "heap_mb": m1["JSHeapUsedSize"] / 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    n = args.devices

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = DevServer()
    tokens = [server.add_device(f"dev-{i:05d}") for i in range(n)]
    clients = [TBDeviceMqttClient(server.host, server.port, access_token=t) for t in tokens]
    t = time.time()
    connected = connect_all(clients, timeout=60)
    log(f"{connected}/{n} devices connected in {time.time() - t:.1f} s")

    stop = threading.Event()
    sent = [0]

    def sender() -> None:
        k = 0
        start = time.monotonic()
        while not stop.is_set():
            for i, c in enumerate(clients):
                due = start + k + i / n
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
                c.send_telemetry({"temperature": 20 + (k + i) % 7, "humidity": 40 + i % 11})
                sent[0] += 1
            k += 1

    threading.Thread(target=sender, daemon=True).start()
    driver = browser()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_EVENTS})
        driver.execute_cdp_cmd("Performance.enable", {})
        driver.get(server.url)
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_element(By.ID, "login-username").is_displayed())
        driver.find_element(By.ID, "login-username").send_keys("tenant@thingsboard.org")
        driver.find_element(By.ID, "login-password").send_keys("tenant")
        driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: "Live" in d.find_element(By.ID, "live-state").text)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#device-rows tr"))

        c0, w0 = cpu_seconds(), time.time()
        log(f"phase 1: the device list, {args.seconds:.0f} s")
        listing = phase(driver, args.seconds)
        log("search latency")
        searches = []
        for i in range(10):
            name = f"dev-{(i * 97) % n:05d}"
            searches.append(driver.execute_async_script(SEARCH, name))
        opens = []
        for i in range(5):
            name = f"dev-{(i * 131) % n:05d}"
            driver.execute_async_script(SEARCH + "", name)
            t0 = time.perf_counter()
            driver.find_element(By.CSS_SELECTOR, f'#device-rows tr[data-name="{name}"]').click()
            wait.until(
                lambda d, name=name: (
                    d.find_element(By.ID, "device-name").text == name
                    and d.find_elements(
                        By.CSS_SELECTOR, '#telemetry-rows tr[data-key="temperature"]'
                    )
                )
            )
            opens.append((time.perf_counter() - t0) * 1000)
        log(f"phase 2: one device open, {args.seconds:.0f} s")
        device = phase(driver, args.seconds)
        chart_points = int(
            driver.find_element(By.ID, "telemetry-chart").get_attribute("data-points") or 0
        )
        server_cpu = (cpu_seconds() - c0) / (time.time() - w0)
    finally:
        stop.set()
        driver.quit()
        for c in clients:
            c.disconnect()
        server.stop()

    print(f"\n## Web page with {n:,} devices sending 1 msg/s ({sent[0]:,} messages sent)\n")
    print("| phase | page main thread busy | of which script | stream events/s | JS heap |")
    print("| --- | --- | --- | --- | --- |")
    for label, p in (("device list", listing), ("one device open", device)):
        print(
            f"| {label} | {p['busy'] * 100:.1f} % | {p['script'] * 100:.1f} % "
            f"| {p['events']:.0f} | {p['heap_mb']:.1f} MB |"
        )
    print(
        f"\nSearch by name until the list shows the one row: median "
        f"{statistics.median(searches):.0f} ms (10 searches, includes the 200 ms debounce). "
        f"Open a device until its telemetry shows: median {statistics.median(opens):.0f} ms "
        f"(5 devices). Chart points at the end: {chart_points}. This process (server + "
        f"{n:,} clients + sender) used {server_cpu * 100:.0f} % of one core. "
        f"CPU: {os.cpu_count()} cores."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
