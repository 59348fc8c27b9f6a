"""Drive Debian's headless Chromium over the DevTools protocol: load a page, log its requests and errors.

    with open_page(url) as page:            # loaded, requests, failed requests and console errors recorded
        page.evaluate("document.title")
        page.click(x, y); page.screenshot(path)
    screenshot(url, path, size)             # one call: PNG written, the Page returned
    dom_after_load(url)                      # the DOM as HTML once the page has loaded
    page.zoom_map(8)                         # a Leaflet page: set the map's zoom, wait for zoomend

The browser resolves no host name but 127.0.0.1 (``--host-resolver-rules``), so a page that asks for
anything outside loopback fails to load it, and ``page.requests`` shows the attempt.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import websocket

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--remote-debugging-port=0")


# The page's Leaflet map, as a JavaScript expression (folium names it map_<id>).
LEAFLET_MAP = "Object.values(window).find(v => window.L && v instanceof L.Map)"


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    """One loaded tab: what it requested, which requests failed (an HTTP error, or no answer; a request
    the page cancelled is no failure), what it logged as errors, and ways to look at it."""

    _ws: websocket.WebSocket
    _session: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    _next_id: int = 0
    _urls: dict[str, str] = field(default_factory=dict)  # request id -> URL

    def _handle(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
            self._urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            self.failed.append(f"{params['response']['status']} {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.failed.append(f"{params.get('errorText')} {self._urls.get(params['requestId'], '?')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console_errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.console_errors.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")

    def _read(self, timeout: float) -> dict:
        self._ws.settimeout(timeout)
        message = json.loads(self._ws.recv())
        if message.get("sessionId") == self._session:
            self._handle(message)
        return message

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        """Send a DevTools command to the tab and return its result (events met meanwhile are recorded)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params,
                                  "sessionId": self._session}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(max(0.1, deadline - time.monotonic()))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(websocket.WebSocketTimeoutException):
                message = self._read(max(0.1, deadline - time.monotonic()))
                if message.get("method") == method and message.get("sessionId") == self._session:
                    return message["params"]
        raise BrowserError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout} s: {expression}")
            time.sleep(0.1)

    def click(self, x: float, y: float) -> None:
        """A real left click (press and release) at viewport coordinates."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=0 if kind == "mouseMoved" else 1)

    def zoom_map(self, zoom: float) -> None:
        """Set the zoom of the page's Leaflet map (no animation) and wait until it has ended."""
        self.evaluate(f"new Promise(r => {{ const m = {LEAFLET_MAP}; if (m.getZoom() === {zoom}) return r(true); "
                      f"m.once('zoomend', () => r(true)); m.setZoom({zoom}, {{animate: false}}); }})")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def external_requests(self, allowed_hosts=("127.0.0.1",)) -> list[str]:
        """Requests that left this machine's loopback (``data:`` and ``file:`` stay local)."""
        return [url for url in self.requests
                if urlsplit(url).scheme not in ("data", "file", "about", "blob")
                and urlsplit(url).hostname not in allowed_hosts]


def _devtools_url(profile: Path, process: subprocess.Popen, timeout: float = 20) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserError(f"chromium exited: {process.stderr.read().decode()[-1000:]}")
        if port_file.is_file() and len(lines := port_file.read_text().split()) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise BrowserError("chromium did not open its DevTools port")


@contextlib.contextmanager
def open_page(url: str, size: tuple[int, int] = (1280, 800), timeout: float = 30):
    """A fresh headless Chromium (own profile) with one tab that has loaded ``url``."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            ws = websocket.create_connection(_devtools_url(Path(profile), process), timeout=timeout,
                                             suppress_origin=True)
            try:
                yield _load(ws, url, size, timeout)
            finally:
                ws.close()
        finally:  # the whole group: renderer and helper processes too, so none writes to the profile later
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _browser_call(ws, method: str, **params) -> dict:
    ws.send(json.dumps({"id": 1_000_000, "method": method, "params": params}))
    while True:
        message = json.loads(ws.recv())
        if message.get("id") == 1_000_000:
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            return message["result"]


def _load(ws, url: str, size: tuple[int, int], timeout: float) -> Page:
    target = _browser_call(ws, "Target.createTarget", url="about:blank")["targetId"]
    session = _browser_call(ws, "Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    page = Page(ws, session)
    for domain in ("Page", "Network", "Runtime", "Log"):
        page.call(f"{domain}.enable")
    page.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
              mobile=False)
    page.call("Page.navigate", url=url)
    page.wait_for_event("Page.loadEventFired", timeout)
    page.wait_until("document.readyState === 'complete'", timeout)
    return page


def screenshot(url: str, path: Path, size: tuple[int, int] = (1280, 800)) -> Page:
    """Load ``url`` and write a PNG of the viewport to ``path``; the Page tells what was requested."""
    with open_page(url, size) as page:
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page.screenshot(path)
        return page


def dom_after_load(url: str) -> str:
    with open_page(url) as page:
        return page.dom()
