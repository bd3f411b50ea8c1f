"""The model monitoring page in a real headless browser: Debian's chromium driven through
chromedriver by Selenium, the page served by ``monitor_page.add_routes`` behind a real Envoy
(routed as the gateway routes it) and fed by real ONNX Runtime inferences running while the page
is open."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from tradecore.inference.monitor import MonitorRecorder

from tests.monitor_app import FEATURES, Envoy, Server, Traffic

pytestmark = pytest.mark.e2e

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver; "
    ".ci/run installs them)",
)
WAIT_S = 30


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1400,2400")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


# The page redraws every second, replacing its elements: each read is one script, run
# between two redraws, so it never sees a half-drawn page or an element already replaced.
_SECTION = 'section[data-model="pricer"]'


def texts(browser: WebDriver, css: str, attr: str | None = None) -> list[str]:
    """The text (or attribute ``attr``) of every element matching ``css``."""
    return list(
        browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => arguments[1] ? e.getAttribute(arguments[1]) : e.textContent)",
            css,
            attr,
        )
    )


def path_points(browser: WebDriver, chart: str, series: str) -> int:
    """How many points the drawn path of ``series`` in ``chart`` has (its M/L commands)."""
    ds = texts(browser, f'{_SECTION} svg[data-chart="{chart}"] path[data-series="{series}"]', "d")
    return sum(len(re.findall(r"[ML]", d or "")) for d in ds)


def cell(browser: WebDriver, series: str, field: str) -> str:
    found = texts(
        browser, f'{_SECTION} table.summary tr[data-series="{series}"] td[data-field="{field}"]'
    )
    return found[0] if found else ""


def wait(browser: WebDriver, what: str, cond: Any) -> Any:
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.2).until(
        lambda _: cond(), message=f"the page never showed {what}"
    )


@needs_chromium
def test_page_draws_live_statistics_of_real_inferences(browser: WebDriver, tmp_path: Path) -> None:
    recorder = MonitorRecorder()
    with (
        Server(recorder) as server,
        Envoy(tmp_path, server.port) as gateway,
        Traffic(recorder) as traffic,
    ):
        browser.get(f"{gateway.url}/monitor")
        browser.execute_script("window.__loadedOnce = 'yes'")
        wait(browser, "the model's section", lambda: texts(browser, f"{_SECTION} h2"))
        assert texts(browser, f"{_SECTION} h2") == ["model pricer"]

        # Latency percentiles over time, champion and challenger, growing as time passes.
        wait(
            browser,
            "two latency points",
            lambda: path_points(browser, "latency", "v1 champion p50") >= 2,
        )
        before = path_points(browser, "latency", "v1 champion p50")
        wait(
            browser,
            "more latency points",
            lambda: path_points(browser, "latency", "v1 champion p50") > before,
        )
        for s in ("v1 champion p99", "v2 challenger p50", "v2 challenger p99"):
            wait(browser, s, lambda s=s: path_points(browser, "latency", s) >= 2)
        roles = set(
            texts(browser, f'{_SECTION} svg[data-chart="latency"] path.series', "data-role")
        )
        assert roles == {"champion", "challenger"}

        # Throughput, batch sizes, error rate: each drawn, with its axis labels.
        for chart, series in (
            ("throughput", "v1 champion"),
            ("batch", "v1 champion mean"),
            ("batch", "v2 challenger max"),
            ("errors", "v1 champion"),
        ):
            wait(
                browser,
                f"{chart} {series}",
                lambda c=chart, s=series: path_points(browser, c, s) >= 2,
            )
        labels = texts(browser, f"{_SECTION} text.axis-label.y")
        assert labels == [
            "latency (ms)",
            "requests/s",
            "batch size (rows)",
            "error rate (%)",
            "drift score",
        ]
        ticks = texts(browser, f'{_SECTION} svg[data-chart="latency"] text.tick.x')
        assert ticks and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in ticks)
        # The summary shows the errors the traffic made (every 10th request).
        wait(
            browser,
            "errors in the summary",
            lambda: cell(browser, "v1 champion", "errors") not in ("", "0"),
        )

        # Drift: one series per feature, its points growing; x2 moves away and is flagged.
        for f in range(FEATURES):
            wait(
                browser,
                f"drift of x{f}",
                lambda f=f: (
                    len(
                        texts(
                            browser,
                            f'{_SECTION} svg[data-chart="drift"] circle[data-series="v1 x{f} ks"]',
                        )
                    )
                    >= 2
                ),
            )
        drift_series = set(
            texts(browser, f'{_SECTION} svg[data-chart="drift"] path.series', "data-series")
        )
        assert drift_series == {f"v1 x{f} ks" for f in range(FEATURES)}
        wait(
            browser,
            "x2 flagged as drifted",
            lambda: texts(
                browser,
                f'{_SECTION} svg[data-chart="drift"] circle.drifted[data-series="v1 x2 ks"]',
            ),
        )

        # Champion vs challenger table.
        head = texts(browser, f"{_SECTION} table.comparison th")
        assert head[1:3] == ["v1 champion", "v2 challenger"]
        metrics = texts(browser, f'{_SECTION} table.comparison td[data-field="metric"]')
        assert "latency p99" in metrics and "error rate" in metrics

        # One more inference shows up without a reload: with the traffic paused and the page
        # caught up, one request adds exactly one to the champion's count.
        traffic.pause()
        champion = next(
            s
            for s in recorder.snapshot(model="pricer")["models"][0]["series"]
            if s["role"] == "champion"
        )
        count = champion["window"]["count"]
        wait(browser, f"count {count}", lambda: cell(browser, "v1 champion", "count") == str(count))
        traffic.infer("1", "champion", 7)
        wait(
            browser,
            f"count {count + 1}",
            lambda: cell(browser, "v1 champion", "count") == str(count + 1),
        )
        # and a series that starts now appears (a shadow version)
        traffic.engines["3"] = traffic.engines["2"]
        traffic.infer("3", "shadow", 3)
        wait(
            browser,
            "the shadow series",
            lambda: path_points(browser, "latency", "v3 shadow p50") >= 1,
        )
        assert cell(browser, "v3 shadow", "count") == "1"
        assert browser.execute_script("return window.__loadedOnce") == "yes"

        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []


@needs_chromium
def test_page_polls_where_there_is_no_event_source(browser: WebDriver) -> None:
    """Without EventSource the page polls the snapshot route, and still updates in place."""
    browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.EventSource;"}
    )
    recorder = MonitorRecorder()
    with Server(recorder) as server, Traffic(recorder) as traffic:
        traffic.pause()
        traffic.infer("1", "champion", 4)
        browser.get(f"{server.url}/monitor")
        assert browser.execute_script("return typeof EventSource") == "undefined"
        browser.execute_script("window.__loadedOnce = 'yes'")
        wait(browser, "count 1", lambda: cell(browser, "v1 champion", "count") == "1")
        traffic.infer("1", "champion", 4)
        traffic.infer("2", "challenger", 4)
        wait(browser, "count 2", lambda: cell(browser, "v1 champion", "count") == "2")
        wait(browser, "the challenger", lambda: cell(browser, "v2 challenger", "count") == "1")
        wait(
            browser,
            "latency drawn",
            lambda: path_points(browser, "latency", "v1 champion p50") >= 1,
        )
        assert texts(browser, "#status", "data-state") == ["live"]
        assert browser.execute_script("return window.__loadedOnce") == "yes"
