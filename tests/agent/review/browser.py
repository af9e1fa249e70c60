"""A real headless Chromium driven over the DevTools protocol through `--remote-debugging-pipe`
(file descriptors 3 and 4, NUL-separated JSON messages): the standard library is enough, no
websocket client or browser-automation package. Also a tiny PNG reader to check a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Browser:
    def __init__(self, process: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.process = process
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(deadline=time.monotonic() + 60)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self._events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self._events if e.get("method") == method), None)
            if found is not None:
                return found
            self._events.append(self._receive(deadline))

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))


@contextmanager
def chromium(executable: str, width: int = 1200, height: int = 900) -> Iterator[Browser]:
    """A headless Chromium with a throw-away profile, killed (with its children) on exit."""
    to_read, to_write = os.pipe()  # we write commands, chromium reads them on fd 3
    from_read, from_write = os.pipe()  # chromium writes replies on fd 4
    profile = tempfile.mkdtemp(prefix="optforge-chromium-")

    def child_fds() -> None:
        # dup first: os.pipe's fds may already be 3 or 4, and dup2 onto itself keeps close-on-exec.
        commands, replies = os.dup(to_read), os.dup(from_write)
        os.dup2(commands, 3)
        os.dup2(replies, 4)

    args = [
        executable,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    process = subprocess.Popen(
        args, preexec_fn=child_fds, close_fds=False, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(to_read)
    os.close(from_write)
    try:
        yield Browser(process, to_write, from_read)
    finally:
        os.close(to_write)
        os.close(from_read)
        with suppress(ProcessLookupError):  # our own process group: chromium and its helpers
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def open_page(browser: Browser, url: str, offline: bool = True) -> str:
    """Open `url` in a new tab (with the network switched off) and wait for its load event;
    returns the DevTools session of the tab."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session)
    if offline:
        browser.send(
            "Network.emulateNetworkConditions", session,
            offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1,
        )  # fmt: skip
    browser.send("Page.navigate", session, url=url)
    browser.wait_for("Page.loadEventFired")
    return session


def evaluate(browser: Browser, session: str, expression: str) -> Any:
    """The JSON-able value of a JavaScript expression in the page."""
    reply = browser.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"{expression[:60]}...: {reply['exceptionDetails']}")
    return reply["result"].get("value")


def screenshot(browser: Browser, session: str, box: dict[str, float], scale: float = 0.5) -> bytes:
    """A PNG of the page region `box` (x, y, width, height in CSS pixels of the document)."""
    clip = {**box, "scale": scale}
    shot = browser.send(
        "Page.captureScreenshot", session, format="png", captureBeyondViewport=True, clip=clip
    )
    return base64.b64decode(shot["data"])


def page_errors(browser: Browser) -> list[str]:
    """Exceptions, console errors and error log entries (e.g. a failed load) seen so far."""
    errors = []
    for event in browser.events():
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    return errors


def requested_urls(browser: Browser) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in browser.events()
        if e.get("method") == "Network.requestWillBeSent"
    ]


# -- PNG ----------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, "only 8-bit RGB(A) PNGs"
    channels = 3 if color == 2 else 4
    return width, height, _unfilter(zlib.decompress(idat), width, height, channels)


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    estimate = left + up - corner  # Paeth
    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    return left if pa <= pb and pa <= pc else up if pb <= pc else corner
