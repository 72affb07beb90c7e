"""What the browser tests share: finding Chromium, free ports, waiting, a Streamlit server.

Playwright drives Debian's Chromium through ``executable_path``; its own browser download is
never used. A test module calls :func:`require_browser` at import, which skips it (with the
reason) when Chromium or the playwright package is missing.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((p for p in (os.environ.get("CIARD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.exists(p)), None)
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("CIARD_SHOTS", "/tmp/ciard-shots"))


def require_browser():
    """Skip the calling module unless Chromium and playwright are there; return playwright.sync_api."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CIARD_CHROMIUM)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                               "(pip install -r requirements-dev.txt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond, timeout: float, what: str, poll: float = 0.1):
    """Poll ``cond`` until it returns something true (which is returned) or time runs out."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


#: true once Streamlit has finished the script run (its "Running…" status widget is gone)
IDLE_JS = "() => !document.querySelector('[data-testid=stStatusWidget]')"
#: ... and no st.spinner is still showing
IDLE_NO_SPINNER_JS = "() => !document.querySelector('[data-testid=stStatusWidget]') && !document.querySelector('[data-testid=stSpinner]')"


def idle(page, timeout: float = 60, settle_ms: int = 300, js: str = IDLE_JS) -> None:
    """Let a rerun start (``settle_ms``), then wait until the page's script run has ended."""
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(js, timeout=timeout * 1000)


@contextlib.contextmanager
def streamlit_server(runs: Path, log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` on a free port with ``runs`` as its run store; stopped after."""
    port = free_port()
    env = {**os.environ, "CIARD_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None and pytest.fail("streamlit exited early")
    try:
        wait(healthy, 60, "the streamlit server", poll=0.3)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@contextlib.contextmanager
def browser_page(timeout_ms: float) -> Iterator[tuple[object, object]]:
    """Headless Chromium with one 1500x1100 page (default timeout ``timeout_ms``); closed on exit."""
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(timeout_ms)
            yield browser, page
        finally:
            browser.close()


def shot(page, name: str) -> None:
    """A full-page screenshot into :data:`SHOTS`: Streamlit scrolls inside its main element, not
    the document, so the viewport is made as tall as that element's content for the shot."""
    page.mouse.move(5, 5)
    size = page.viewport_size
    tall = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]'); "
                         "return m ? m.scrollHeight : 0; }")
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(int(tall) + 40, 12000)})
    page.wait_for_timeout(600)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    page.set_viewport_size(size)
