"""What the browser tests share: finding Chromium, a module's Streamlit server, waiting for it.

Playwright drives Debian's Chromium through ``executable_path``; its own browser download is
never used. A test module calls :func:`require_browser` at import, which skips it (with the
reason) when Chromium or the playwright package is missing. Each module starts one server
(:func:`served`, in its ``server`` fixture) and one Chromium (``browser`` in conftest.py); each
test opens its own page (a Streamlit session) or shares a module fixture's page, checks one
behaviour with Playwright's ``expect``, and waits for a script run to end with :func:`settled`,
which reads Streamlit's ``data-test-script-state`` attribute instead of sleeping.
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


#: Streamlit's root element; its ``data-test-script-state`` attribute says whether a script run
#: (full or fragment) is going on: ``initial``, ``running``, ``rerunRequested``, ``notRunning``, ...
APP = "[data-testid=stApp]"


def settled(page, timeout: float = 60, settle_ms: int = 150, spinners: bool = False) -> None:
    """Wait until the app is connected and its script run has ended (Streamlit's own e2e helper
    does the same): first up to ``settle_ms`` for a rerun a click has asked for to begin;
    ``spinners``: also until no ``st.spinner`` shows."""
    from playwright.sync_api import expect
    app = page.locator(APP)
    with contextlib.suppress(AssertionError):   # a rerun a click asked for may not have begun yet
        expect(app).not_to_have_attribute("data-test-script-state", "notRunning", timeout=settle_ms)
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout * 1000)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout * 1000)
    if spinners:
        expect(page.locator("[data-testid=stSpinner]")).to_have_count(0, timeout=timeout * 1000)


def key(page, name: str):
    """The element of the widget (or container) made with ``key=name``."""
    return page.locator(f".st-key-{name}")


def select(page, name: str, option: str) -> None:
    """Pick ``option`` in the selectbox ``name``; the list is reopened if a rerun replaced it."""
    from playwright.sync_api import Error
    for attempt in range(3):
        key(page, name).locator("[role=combobox]").first.click()
        try:
            page.get_by_role("option", name=option, exact=True).first.click(timeout=5_000)
            return
        except Error:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            settled(page)


def fill(page, name: str, value) -> None:
    """Type ``value`` into the text or number input ``name`` and commit it with Tab (Enter
    would submit a form)."""
    box = key(page, name).locator("input").first
    box.fill(str(value))
    box.press("Tab")


def button(page, name: str, label: str):
    """The button ``name`` by its label (a button with ``help=`` also holds a tooltip trigger)."""
    return key(page, name).get_by_role("button", name=label, exact=True)


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
def chromium() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright; closed on exit."""
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1400, height: int = 1000, timeout_ms: float = 60_000):
    """A fresh page (its own Streamlit session) with Playwright's default timeout set."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    return page


@contextlib.contextmanager
def served(tmp_path_factory, name: str, prepare=None) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """For a module's ``server`` fixture: a run store ``name`` (``prepare(runs)`` fills it), a
    Streamlit server on it; gives (url, runs, process); after, every trainer, sweep driver and
    queue worker it started is stopped (they run in sessions of their own)."""
    runs = tmp_path_factory.mktemp(name)
    if prepare is not None:
        prepare(runs)
    try:
        with streamlit_server(runs, runs.parent / f"{name}.log") as (url, proc):
            yield url, runs, proc
    finally:
        stop_trainers(runs)


def stop_trainers(runs: Path, grace: float = 20) -> None:
    """End what a store's page left behind: sweep drivers and queue workers (SIGTERM to their
    sessions), queued runs taken off the queue, live runs asked to stop, killed after ``grace`` s."""
    from ciard.runs import RunStore
    store = RunStore(runs)
    where = str(runs.resolve()).encode()
    for proc in Path("/proc").glob("[0-9]*"):   # `python -m ciard sweep|queue ... RUNS ...`, by their argv
        with contextlib.suppress(OSError, ValueError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"ciard" in argv and ({b"sweep", b"queue"} & set(argv)) and any(where in a for a in argv):
                os.killpg(int(proc.name), signal.SIGTERM)   # each runs in a session of its own
    for name in store.names():
        if store.get(name).state == "queued":
            store.stop(name)
    live = lambda: [n for n in store.names() if store.get(n).state in ("starting", "running")]
    for name in live():
        store.stop(name)
    t0 = time.time()
    while live() and time.time() - t0 < grace:
        time.sleep(0.3)
    for name in live():
        store.kill(name)


def shot(page, name: str) -> None:
    """A full-page screenshot into :data:`SHOTS`: Streamlit scrolls inside its main element, not
    the document, so the viewport is made as tall as that element's content for the shot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(5, 5)     # no tooltip left open under the pointer
    size = page.viewport_size
    tall = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]'); "
                         "return m ? m.scrollHeight : 0; }")
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(int(tall) + 40, 12000)})
    page.wait_for_timeout(600)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    page.set_viewport_size(size)


def save_figures(name: str, figures: dict) -> None:
    """Write a module's measured figures to ``$CIARD_SHOTS/name`` (JSON) and print them: they are
    measurements to report, never pass/fail criteria (a loaded machine would make them flaky)."""
    import json
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / name).write_text(json.dumps(figures, indent=1))
    print(f"{name}:", json.dumps(figures))
