"""The gallery and the dashboard in a real browser (Debian's Chromium through Playwright),
against the three roles running as processes: sign in, upload three photos and watch them
finish live, open one, delete it; on the dashboard, see completions count up and retry a
failed job. Screenshots go to ``test-artifacts/screenshots/`` (the path is printed)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import ROOT, Stack, start_stack
from tests.web.axe import axe_source, axe_violations

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = ROOT / "test-artifacts" / "screenshots"
PHOTOS = ["real/Canon_EOS_7D.jpg", "real/Nikon_D5000.jpg", "real/Olympus_PEN_E-P3.jpg"]
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1400, "height": 900}
LIVE_MS = 60_000  # generous: the machine is shared and the worker may be busy

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}; run .ci/install-browser (apt-get install chromium)",
)


def _request(
    stack: Stack, method: str, path: str, token: str, body: bytes | None = None, ctype: str = ""
) -> tuple[int, Any]:
    req = urllib.request.Request(f"{stack.api}{path}", data=body, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for_status(stack: Stack, photo_id: str | None, status: str) -> dict[str, Any]:
    """Poll the api until the photo reaches ``status``; return its body."""
    deadline = time.monotonic() + LIVE_MS / 1000
    while True:
        _, photo = _request(stack, "GET", f"/v1/photos/{photo_id}", stack.token)
        if photo.get("status") == status:
            return dict(photo)
        assert time.monotonic() < deadline, photo
        time.sleep(0.2)


def upload(stack: Stack, path: Path, token: str) -> str:
    """Upload one file with a hand-built multipart body; return the photo id."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
            f"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, data = _request(
        stack, "POST", "/v1/photos", token, body, f"multipart/form-data; boundary={boundary}"
    )
    assert status in (200, 201), data
    return str(data["photo_id"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("browser"), job_backoff_ms="200", shutdown_grace_s="2"
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    # Every expect() waits up to LIVE_MS, not playwright's 5 s: most wait on an answer of
    # the api or a page's own work, which a machine running the suite's other process
    # beside this one now and then takes longer than 5 s to give (16ea220 was one). An
    # expect passes as soon as it holds; only a failing one takes longer to say so.
    playwright_api.expect.set_options(timeout=LIVE_MS)
    try:
        with playwright_api.sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        playwright_api.expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def axe() -> Callable[[Any], None]:
    """``axe(page)`` fails on any serious or critical accessibility violation in the page
    as it is now."""
    source = axe_source()

    def check(page: Any) -> None:
        if source is not None:
            found = axe_violations(page, source)
            width = page.viewport_size["width"]
            assert not found, f"axe at {width} px on {page.url}: {found}"

    return check


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def console(msg: Any) -> None:
        # Chromium logs refused sockets (the bus restart test causes them on purpose) and
        # 4xx answers (the dashboard test provokes a 403) itself; other errors are ours.
        network = ("WebSocket connection to", "Failed to load resource")
        if msg.type == "error" and not msg.text.startswith(network):
            problems.append(f"console {msg.type}: {msg.text}")

    page.on("console", console)
    yield page
    context.close()
    # A CSP violation or an uncaught exception is a defect even if the flow worked.
    assert not problems, problems


def look(page: Any, axe: Callable[[Any], None], name: str, *, full_page: bool = False) -> None:
    """A screenshot to look at in test-artifacts/, and axe's verdict on the page as shown."""
    page.screenshot(path=str(SHOTS / name), full_page=full_page)
    axe(page)


def test_sign_in_pages_are_accessible_at_both_widths(
    stack: Stack, page: Any, axe: Callable[[Any], None]
) -> None:
    expect = playwright_api.expect
    for path, name in (("/", "sign-in"), ("/dashboard", "dashboard-sign-in")):
        for size in (PHONE, DESKTOP):
            page.set_viewport_size(size)
            page.goto(f"{stack.api}{path}")
            expect(page.locator("#sign-in")).to_be_visible()
            if size is PHONE:
                assert_fits(page, 360)
                page.set_viewport_size(size)
            look(page, axe, f"{name}-{size['width']}.png")


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    playwright_api.expect(page.locator("#app")).to_be_visible()


def test_gallery_upload_live_progress_view_and_delete(
    stack: Stack, page: Any, axe: Callable[[Any], None], corpus: Path
) -> None:
    expect = playwright_api.expect
    sign_in(page, f"{stack.api}/", stack.token)
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#bus-status")).to_have_text("Live", timeout=LIVE_MS)

    page.set_input_files("#file-input", [str(corpus / p) for p in PHOTOS])
    uploads = page.locator("#uploads .upload")
    expect(uploads).to_have_count(3)
    for i in range(3):
        item = uploads.nth(i)
        expect(item.locator("progress")).to_have_attribute("value", "100", timeout=LIVE_MS)
        expect(item).to_have_attribute("data-state", "completed", timeout=LIVE_MS)
        expect(item.locator(".stages li.done")).to_have_count(4)
        expect(item.locator("img.upload-img")).to_be_visible()
    # Thumbnails in the grid, without a reload: three tiles whose images decoded, in the
    # timeline's order (newest taken first) whatever order they finished in.
    tiles = page.locator("#grid .tile")
    expect(tiles).to_have_count(3)
    _, listing = _request(stack, "GET", "/v1/photos?sort=taken", stack.token)
    in_grid = tiles.evaluate_all("els => els.map((el) => el.dataset.photoId)")
    assert in_grid == [p["photo_id"] for p in listing["items"]]
    expect(page.locator("#grid img.tile-img.loaded")).to_have_count(3, timeout=LIVE_MS)
    widths = page.eval_on_selector_all("#grid img.tile-img", "els => els.map(e => e.naturalWidth)")
    assert all(w > 0 for w in widths), widths
    # The placeholder is a decoded ThumbHash (a PNG data URL), not an empty box.
    background = page.locator("#grid .tile-frame").first.evaluate(
        "el => getComputedStyle(el).backgroundImage"
    )
    assert background.startswith('url("data:image/png;base64,'), background[:60]
    look(page, axe, "gallery.png", full_page=True)

    canon = tiles.filter(has_text="Canon_EOS_7D.jpg")  # captions name the file
    expect(canon).to_have_count(1)
    photo_id = canon.get_attribute("data-photo-id")
    # The optimised copy comes from the follow-up job: wait for it before opening the view.
    deadline = time.monotonic() + LIVE_MS / 1000
    while True:
        _, record = _request(stack, "GET", f"/v1/photos/{photo_id}", stack.token)
        if "optimization" in (record["metadata"] or {}) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    smaller = [d for d in record["derivatives"] if d["name"].startswith("optimized")]
    canon.get_by_role("button").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    # The open photo has its own address.
    expect(page).to_have_url(f"{stack.api}/photos/{photo_id}")
    expect(viewer.locator('dd[data-field="file"]')).to_have_text("Canon_EOS_7D.jpg")
    expect(viewer.locator('dd[data-field="camera"]')).to_have_text("Canon EOS 7D")
    expect(viewer.locator('dd[data-field="dimensions"]')).to_have_text("600 \u00d7 900")
    expect(viewer.locator('dd[data-field="format"]')).to_have_text("JPEG")
    # The date as the reader's language writes it (this context is en-US), not ISO 8601.
    expect(viewer.locator('dd[data-field="taken"]')).to_have_text("December 12, 2010 at 12:41 PM")
    expect(viewer.locator('dd[data-field="exposure"]')).to_contain_text(re.compile(r"\d s"))
    expect(viewer.locator("#viewer-img")).to_have_js_property("complete", True, timeout=LIVE_MS)
    assert viewer.locator("#viewer-img").evaluate("img => img.naturalWidth") > 0
    href = viewer.get_by_role("link", name="Download original").get_attribute("href")
    assert href and href.startswith(f"/v1/photos/{photo_id}/original?")
    optimized = viewer.locator("#viewer-optimized")
    if smaller:
        expect(optimized).to_be_visible()
        expect(optimized).to_contain_text("% smaller")
        link = optimized.get_attribute("href")
        assert link and link.startswith(f"/v1/photos/{photo_id}/derivatives/optimized"), link
    else:
        expect(optimized).to_be_hidden()
    look(page, axe, "photo-view.png")

    # Previous and next by keyboard, in the grid's order; each shows in the address.
    order = tiles.evaluate_all("els => els.map((el) => el.dataset.photoId)")
    at = order.index(photo_id)
    step = 1 if at + 1 < len(order) else -1
    page.keyboard.press("ArrowRight" if step == 1 else "ArrowLeft")
    expect(viewer).to_have_attribute("data-photo-id", order[at + step])
    expect(page).to_have_url(f"{stack.api}/photos/{order[at + step]}")
    page.keyboard.press("ArrowLeft" if step == 1 else "ArrowRight")
    expect(viewer).to_have_attribute("data-photo-id", photo_id)
    # Zoom to the original's own pixels (one photo pixel on one screen pixel), and back.
    zoom = viewer.get_by_role("button", name="Actual pixels")
    zoom.click()
    img = viewer.locator("#viewer-img")
    expect(viewer.get_by_role("button", name="Fit to screen")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(img).to_have_attribute("src", re.compile(f"/v1/photos/{photo_id}/original"))
    expect(img).to_have_js_property("naturalWidth", 600, timeout=LIVE_MS)
    ratio = page.evaluate("() => devicePixelRatio")
    assert img.evaluate("i => i.getBoundingClientRect().width") == pytest.approx(600 / ratio)
    page.keyboard.press("z")
    expect(viewer.get_by_role("button", name="Actual pixels")).to_have_attribute(
        "aria-pressed", "false"
    )
    # Back closes the view (the gallery's address again), forward opens it again, and so
    # does a reload of its address.
    page.go_back()
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(f"{stack.api}/")
    page.go_forward()
    expect(viewer).to_be_visible()
    expect(viewer).to_have_attribute("data-photo-id", photo_id)
    # A close whose event comes after the view opened again (back, then forward, on a busy
    # page: it came after the forward) neither closes the view nor moves its address.
    viewer.evaluate("d => { d.close(); d.showModal(); }")
    page.wait_for_timeout(300)
    expect(viewer).to_be_visible()
    expect(page).to_have_url(f"{stack.api}/photos/{photo_id}")
    page.reload()
    # A whole page load (sign-in, the photo, its preview): the suite's other process may
    # be running a soak beside it, so it gets the live wait, not the default 5 s.
    expect(viewer).to_be_visible(timeout=LIVE_MS)
    expect(viewer).to_have_attribute("data-photo-id", photo_id)
    expect(viewer.locator('dd[data-field="camera"]')).to_have_text("Canon EOS 7D")

    # A photo with GPS shows where, linked to a map.
    nikon = next(
        p["photo_id"]
        for p in listing["items"]
        if p["photo_id"] != photo_id and ((p["metadata"] or {}).get("exif") or {}).get("gps")
    )
    page.goto(f"{stack.api}/photos/{nikon}")
    place = viewer.locator('dd[data-field="location"] a')
    expect(place).to_have_text(re.compile(r"^\d+\.\d{5}° [NS], \d+\.\d{5}° [EW]$"))
    assert place.get_attribute("href").startswith("https://www.openstreetmap.org/?mlat=")
    page.goto(f"{stack.api}/photos/{photo_id}")
    expect(viewer).to_have_attribute("data-photo-id", photo_id)
    page.once("dialog", lambda dialog: dialog.accept())
    viewer.get_by_role("button", name="Delete").click()
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(f"{stack.api}/")
    expect(tiles).to_have_count(2)
    status, _ = _request(stack, "GET", f"/v1/photos/{photo_id}", stack.token)
    assert status == 404

    # What the flow did shows in each role's metrics.
    worker = _scrape(stack.worker_metrics)
    assert 'filmstrip_stage_duration_seconds_count{stage="thumbnails"} 3.0' in worker
    assert 'filmstrip_job_duration_seconds_count{outcome="completed",phase="ready"} 3.0' in worker
    bus = _scrape(stack.bus.replace("ws://", "http://").replace("/ws", "/metrics"))
    delivered = [ln for ln in bus.splitlines() if ln.startswith("filmstrip_ws_events_delivered")]
    assert delivered and float(delivered[0].split()[-1]) >= 12, delivered
    api = _scrape(f"{stack.api}/metrics")
    deleted = 'method="DELETE",route="/v1/photos/{photo_id}",status="204"'
    assert f"filmstrip_http_requests_total{{{deleted}}} 1.0" in api


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


# Every control a finger or a pointer may use that is on screen, as (html, width, height).
_TARGETS = """() => [...document.querySelectorAll(
    'a[href], button, select, input:not(.visually-hidden), label.button, summary')]
  .map(el => [el, el.getBoundingClientRect()])
  .filter(([el, r]) => r.width > 0 && r.right > 0 && el.checkVisibility())
  .map(([el, r]) => [el.outerHTML.slice(0, 90), Math.round(r.width), Math.round(r.height)])"""


def assert_fits(page: Any, width: int) -> None:
    """No horizontal scrolling at ``width`` and every target at least 44 px both ways."""
    page.set_viewport_size({"width": width, "height": 800})
    overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > innerWidth + 0.5)
            .map(el => el.outerHTML.slice(0, 60))"""
    )
    assert overflow <= 0, f"{overflow} px of horizontal scroll at {width} px: {wide[:5]}"
    small = [t for t in page.evaluate(_TARGETS) if t[1] < 44 or t[2] < 44]
    assert not small, small


def test_gallery_fits_a_phone_and_a_wide_screen(
    stack: Stack, page: Any, axe: Callable[[Any], None]
) -> None:
    expect = playwright_api.expect
    page.set_viewport_size(PHONE)
    sign_in(page, f"{stack.api}/", stack.token)
    expect(page.locator("#grid .tile").first).to_be_visible()
    # With photos in the gallery the drop zone is only its button; the picker offers the
    # camera roll (image/*, several at once).
    expect(page.locator("#drop")).to_have_class("drop compact")
    expect(page.locator("#drop .drop-hint").first).to_be_hidden()
    picker = page.locator("#file-input")
    assert picker.get_attribute("accept") == "image/*"
    assert picker.get_attribute("multiple") is not None
    assert page.locator("#drop").bounding_box()["height"] < 60
    for width in (360, 390):
        assert_fits(page, width)
    # Three photos a row on a phone, not one photo a screen.
    columns = page.eval_on_selector(
        "#grid ul.grid", "ul => getComputedStyle(ul).gridTemplateColumns.split(' ').length"
    )
    assert columns == 3
    page.set_viewport_size(PHONE)
    look(page, axe, "gallery-390.png")
    page.set_viewport_size(DESKTOP)
    look(page, axe, "gallery-1400.png")

    # The photo view fills the phone; a swipe to the left shows the next photo.
    page.set_viewport_size(PHONE)
    order = page.locator("#grid .tile").evaluate_all("els => els.map((el) => el.dataset.photoId)")
    page.locator("#grid .tile").first.get_by_role("button").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-photo-id", order[0])
    expect(viewer.locator("#viewer-img")).to_have_js_property("complete", True)
    assert_fits(page, 390)
    page.set_viewport_size(PHONE)
    look(page, axe, "photo-view-390.png")
    swipe(page, "#viewer-stage", -120)
    expect(viewer).to_have_attribute("data-photo-id", order[1])
    expect(page).to_have_url(f"{stack.api}/photos/{order[1]}")
    swipe(page, "#viewer-stage", 120)
    expect(viewer).to_have_attribute("data-photo-id", order[0])


def swipe(page: Any, selector: str, dx: int) -> None:
    """A finger's horizontal swipe of ``dx`` px across the middle of ``selector``."""
    page.eval_on_selector(
        selector,
        """(el, dx) => {
            const r = el.getBoundingClientRect();
            const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
            const at = (type, cx) => el.dispatchEvent(new PointerEvent(type, {
                clientX: cx, clientY: y, pointerType: "touch", isPrimary: true, bubbles: true}));
            at("pointerdown", x - dx / 2);
            at("pointermove", x);
            at("pointerup", x + dx / 2);
        }""",
        dx,
    )


def test_dashboard_fits_a_phone(stack: Stack, page: Any, axe: Callable[[Any], None]) -> None:
    expect = playwright_api.expect
    page.set_viewport_size(PHONE)
    sign_in(page, f"{stack.api}/dashboard", stack.admin_token)
    expect(page.locator('.count[data-state="completed"] dd')).to_have_text(re.compile(r"^\d+$"))
    for width in (360, 390):
        assert_fits(page, width)
    page.set_viewport_size(PHONE)
    look(page, axe, "dashboard-390.png", full_page=True)
    # A job's detail fits the phone too.
    page.get_by_role("tab", name=re.compile("^Completed")).click()
    page.locator("#jobs button.open-job", has_text=re.compile("^photo:")).first.click()
    expect(page.locator("#job .run").first).to_be_visible()
    # Its stages are its own: a photo: job's optimization runs in its deferred: job.
    expect(page.locator('#job-facts dd[data-field="stages"]')).to_have_text(
        "validation, metadata, thumbnails"
    )
    for width in (360, 390):
        assert_fits(page, width)
    page.set_viewport_size(PHONE)
    look(page, axe, "job-detail-390.png")


def test_thumbhash_decoder_matches_the_encoders_average_colour(
    stack: Stack, page: Any, corpus: Path
) -> None:
    from filmstrip.pipeline.hashes import thumbhash_average_rgba

    photo_id = upload(stack, corpus / "real/Portrait_3.jpg", stack.token)
    photo = wait_for_status(stack, photo_id, "completed")
    thumbhash = photo["metadata"]["thumbhash"]
    page.goto(f"{stack.api}/")
    mean = page.evaluate(
        """async (hash) => {
            const { thumbHashToRGBA } = await import("/static/js/thumbhash.js");
            const bytes = Uint8Array.from(atob(hash), (c) => c.charCodeAt(0));
            const { w, h, rgba } = thumbHashToRGBA(bytes);
            const sum = [0, 0, 0];
            for (let i = 0; i < rgba.length; i += 4) {
                for (let c = 0; c < 3; c++) sum[c] += rgba[i + c];
            }
            return { w, h, rgb: sum.map(v => v / (w * h) / 255) };
        }""",
        thumbhash,
    )
    expected = thumbhash_average_rgba(base64.b64decode(thumbhash))[:3]
    assert max(abs(a - b) for a, b in zip(mean["rgb"], expected, strict=True)) < 0.03
    # Portrait_3 is taller than wide, and so is its placeholder.
    assert mean["h"] == 32 and mean["w"] < 32


def test_a_german_reader_gets_dates_and_numbers_in_german(stack: Stack, browser: Any) -> None:
    context = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    try:
        page = context.new_page()
        page.goto(f"{stack.api}/")
        said = page.evaluate(
            """async () => {
                const f = await import("/static/js/format.js");
                return [f.formatTaken("2010-12-12T12:41:35"),
                        f.formatTaken("2019-05-01T08:00:00+02:00"),
                        f.formatExposure({ f_number: 2.8, exposure_time: 0.004, iso: 1600,
                                           focal_length: 50 }),
                        f.formatCoordinates({ lat: 48.858370, lon: -2.294481 }),
                        f.formatBytes(2_345_678),
                        f.formatName("heif"), f.formatName("avif"), f.formatName("jxl")];
            }"""
        )
    finally:
        context.close()
    assert said == [
        "12. Dezember 2010 um 12:41",
        "1. Mai 2019 um 08:00 (UTC+02:00)",
        "\u0192/2,8 \u00b7 1/250 s \u00b7 ISO 1.600 \u00b7 50 mm",
        "48,85837\u00b0 N, 2,29448\u00b0 W",
        "2,3 MB",
        "HEIC",
        "AVIF",
        "JXL",
    ]


def test_retry_is_offered_only_where_it_can_help(stack: Stack, page: Any) -> None:
    page.goto(f"{stack.api}/")
    offered = page.evaluate(
        """async () => {
            const { photoFailure } = await import("/static/js/photo.js");
            const failed = (extra) => photoFailure({ status: "failed", ...extra });
            return [
                failed({ error: { category: "TEMPORARY", message: "m", retryable: true } }),
                failed({ error: { category: "DATA", message: "m", retryable: false } }),
                // The api before errors were objects: a string and error_category.
                failed({ error: "timed out", error_category: "TEMPORARY" }),
                failed({ error: "truncated", error_category: "DATA" }),
                photoFailure({ status: "completed", error: null }),
            ].map((f) => f && f.retryable);
        }"""
    )
    assert offered == [True, False, True, False, None]
    # A refused upload: again only when the server did not answer, timed out, was busy or
    # asks for the bytes again; never for a refusal of the file or the request itself.
    again = page.evaluate(
        """async () => {
            const { ApiError, canRetry } = await import("/static/js/api.js");
            return [[0, "network"], [408, "request_timeout"], [429, "rate_limited"],
                    [500, "internal"], [503, "queue_full"], [409, "upload_conflict"],
                    [400, "empty_file"], [401, "unauthorized"], [404, "session_not_found"],
                    [413, "too_large"], [413, "quota_exceeded"], [415, "unsupported_type"]]
                .map(([status, code]) => canRetry(new ApiError(status, code, "m")));
        }"""
    )
    assert again == [True] * 6 + [False] * 6


def test_gallery_is_keyboard_operable(stack: Stack, page: Any) -> None:
    expect = playwright_api.expect
    page.goto(f"{stack.api}/")
    expect(page.get_by_label("API token")).to_be_focused()  # the page starts at sign-in
    page.keyboard.type(stack.token)
    page.keyboard.press("Enter")
    expect(page.locator("#app")).to_be_visible()
    # The skip link is hidden off-screen until it has keyboard focus.
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.bounding_box()["x"] < 0
    skip.focus()
    assert skip.bounding_box()["x"] >= 0
    # Every control has an accessible name.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('#app input, #app select, #app button')]
              .filter(el => !el.labels?.length && !el.getAttribute('aria-label')
                            && !el.textContent.trim())
              .map(el => el.outerHTML)"""
    )
    assert unnamed == []
    # The file picker is reachable by keyboard and shows a visible focus ring.
    page.get_by_label("Choose photos…").focus()
    ring = page.evaluate(
        "() => getComputedStyle(document.querySelector('#drop label.button')).outlineStyle"
    )
    assert ring == "solid"
    # A photo opens from the keyboard, the arrows step through, Escape closes the view and
    # gives the focus back to the photo's tile.
    first = page.locator("#grid .tile button").first
    expect(first).to_be_visible()
    first.focus()
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    opened = viewer.get_attribute("data-photo-id")
    page.keyboard.press("ArrowRight")
    expect(viewer).not_to_have_attribute("data-photo-id", opened)
    stepped = viewer.get_attribute("data-photo-id")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator(f'#grid .tile[data-photo-id="{stepped}"] button')).to_be_focused()
    # Select mode by keyboard: Space picks a photo, Escape leaves the mode.
    page.get_by_role("button", name="Select", exact=True).focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator("#selection-count")).to_have_text("1 selected")
    page.keyboard.press("Escape")
    expect(page.locator("#selection-bar")).to_be_hidden()
    # Signing out forgets the token: a reload lands on the sign-in form again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("() => localStorage.getItem('filmstrip.token')") is None


def test_events_missed_while_the_bus_restarts_are_replayed(
    stack: Stack, page: Any, corpus: Path
) -> None:
    expect = playwright_api.expect
    status = page.locator("#bus-status")
    sign_in(page, f"{stack.api}/", stack.token)
    expect(status).to_have_text("Live", timeout=LIVE_MS)
    # One photo first, so the page holds an event id to resume from.
    page.set_input_files("#file-input", str(corpus / "real/Landscape_1.jpg"))
    first = page.locator("#uploads .upload").first
    expect(first).to_have_attribute("data-state", "completed", timeout=LIVE_MS)

    stack.halt("bus")
    expect(status).to_have_text("Reconnecting…")
    page.set_input_files("#file-input", str(corpus / "real/Landscape_2.jpg"))
    second = page.locator("#uploads .upload").first
    expect(second.locator(".upload-name")).to_have_text("Landscape_2.jpg")
    expect(second.locator("progress")).to_have_attribute("value", "100", timeout=LIVE_MS)
    expect(second).to_have_attribute("data-photo-id", re.compile("."))
    wait_for_status(stack, second.get_attribute("data-photo-id"), "completed")
    stack.launch("bus")
    expect(status).to_have_text("Live", timeout=LIVE_MS)
    expect(second).to_have_attribute("data-state", "completed", timeout=LIVE_MS)
    # Uploaded, started, four stages, completed: all happened while the bus was down and
    # reached the page by replay after it came back (resyncs over HTTP do not count).
    expect(second).to_have_attribute("data-events", re.compile(r"^([7-9]|\d\d)$"), timeout=LIVE_MS)
    expect(second.locator(".stages li.done")).to_have_count(4)


def test_photos_dropped_on_the_page_upload_as_one_session(
    stack: Stack, page: Any, corpus: Path
) -> None:
    expect = playwright_api.expect
    sign_in(page, f"{stack.api}/", stack.token)
    expect(page.locator("#app")).to_be_visible()
    names = ["real/Portrait_1.jpg", "real/Portrait_6.jpg"]
    files = [
        {"name": Path(n).name, "b64": base64.b64encode((corpus / n).read_bytes()).decode()}
        for n in names
    ]
    # A real drop event carrying File objects, as the browser makes from a drag.
    page.evaluate(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            const drop = document.querySelector("#drop");
            drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true }));
            drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
        }""",
        files,
    )
    cards = page.locator("#uploads .upload")
    expect(cards).to_have_count(2)
    for i in range(2):
        expect(cards.nth(i)).to_have_attribute("data-state", "completed", timeout=LIVE_MS)
    # Both went into one new upload session, which the session filter offers and applies.
    sessions = set()
    for i in range(2):
        photo_id = cards.nth(i).get_attribute("data-photo-id")
        sessions.add(wait_for_status(stack, photo_id, "completed")["session_id"])
    [session_id] = sessions
    assert session_id
    page.get_by_label("Session").select_option(session_id)
    expect(page.locator("#grid .tile")).to_have_count(2)


def test_grid_scrolls_through_every_page_while_uploads_arrive(
    stack: Stack, page: Any, corpus: Path
) -> None:
    expect = playwright_api.expect
    _, listing = _request(stack, "GET", "/v1/photos?limit=100", stack.token)
    assert len(listing["items"]) >= 5, "earlier tests upload the photos this one pages through"
    page.set_viewport_size({"width": 600, "height": 400})
    sign_in(page, f"{stack.api}/?page=2", stack.token)
    tiles = page.locator("#grid .tile")
    expect(tiles.first).to_be_visible()
    # Reading along, a photo from March 2011 in the middle of the window.
    anchor = tiles.filter(has_text="Nikon_D5000.jpg")
    anchor.evaluate("el => el.scrollIntoView({ block: 'center' })")
    top = anchor.bounding_box()["y"]
    # Two uploads land while the pages are read: one taken in April 2011 (among the photos
    # shown already, above the one read: it joins its day at once), one in 1999 (past the
    # pages read so far: it comes with its page, once).
    page.set_input_files(
        "#file-input",
        [str(corpus / "real/Samsung_GT-I9000.jpg"), str(corpus / "real/Kodak_DC240.jpg")],
    )
    for i in range(2):
        expect(page.locator("#uploads .upload").nth(i)).to_have_attribute(
            "data-state", "completed", timeout=LIVE_MS
        )
    expect(tiles.filter(has_text="Samsung_GT-I9000.jpg")).to_have_count(1)
    # What was being read has not moved, though a day and two upload cards came above it.
    assert anchor.bounding_box()["y"] == pytest.approx(top, abs=2)
    _, listing = _request(stack, "GET", "/v1/photos?limit=100&sort=taken", stack.token)
    expected = [p["photo_id"] for p in listing["items"]]
    # Pages of two keep coming while the end of the grid is near the window (it is, at
    # first, and again after each scroll), until the cursor runs out.
    # Scrolled until the last page came (not a fixed number of times: each page is an api
    # request, which a loaded machine may answer after the 200 ms between two scrolls).
    deadline = time.monotonic() + LIVE_MS / 1000
    while tiles.count() < len(expected) and time.monotonic() < deadline:
        page.mouse.wheel(0, 2000)
        page.wait_for_timeout(200)
    expect(tiles).to_have_count(len(expected))
    expect(page.locator("#grid-end")).to_have_text(f"{len(expected)} photos")
    shown = tiles.evaluate_all("els => els.map((el) => el.dataset.photoId)")
    assert shown == expected


def _day_label(photo: dict[str, Any]) -> str:
    """The day heading en-US readers see above ``photo``."""
    taken = ((photo["metadata"] or {}).get("exif") or {}).get("taken_at")
    if taken:
        day = datetime.fromisoformat(taken[:10])
        return f"{day:%a}, {day:%B} {day.day}, {day.year}"
    up = datetime.fromisoformat(photo["uploaded_at"].replace("Z", "+00:00")).astimezone()
    return f"Uploaded {up:%a}, {up:%B} {up.day}, {up.year} · no date taken"


def test_timeline_groups_photos_by_day_and_deletes_a_selection(
    stack: Stack, page: Any, axe: Callable[[Any], None]
) -> None:
    expect = playwright_api.expect
    sign_in(page, f"{stack.api}/", stack.token)
    _, listing = _request(stack, "GET", "/v1/photos?limit=100&sort=taken", stack.token)
    photos = listing["items"]
    expect(page.locator("#grid .tile")).to_have_count(len(photos))
    days = page.eval_on_selector_all(
        "#grid section.day",
        """els => els.map(s => [s.querySelector('.day-head').textContent,
                                [...s.querySelectorAll('.tile')].map(t => t.dataset.photoId)])""",
    )
    # Each photo under the day it was taken (else its upload day, said so), days newest
    # first, dated ones before undated ones, as the listing pages them.
    assert [pid for _, ids in days for pid in ids] == [p["photo_id"] for p in photos]
    by_id = {p["photo_id"]: p for p in photos}
    for label, ids in days:
        assert {_day_label(by_id[pid]) for pid in ids} == {label}
    assert len({label for label, _ in days}) == len(days)
    assert any(label.endswith("no date taken") for label, _ in days)
    assert any(not label.startswith("Uploaded") for label, _ in days)
    head = page.locator("#grid .day-head").first
    assert head.evaluate("h => getComputedStyle(h).position") == "sticky"
    # Captions name the file.
    named = [p for p in photos if p.get("filename")]
    assert named
    tile = page.locator(f'#grid .tile[data-photo-id="{named[0]["photo_id"]}"]')
    expect(tile.locator(".tile-caption")).to_have_text(named[0]["filename"])

    # Select two photos and delete them in one go.
    doomed = [p["photo_id"] for p in photos if p.get("filename", "").startswith("Landscape_")]
    assert len(doomed) == 2, [p.get("filename") for p in photos]
    page.get_by_role("button", name="Select", exact=True).click()
    for pid in doomed:
        button = page.locator(f'#grid .tile[data-photo-id="{pid}"] button')
        expect(button).to_have_attribute("aria-pressed", "false")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#selection-count")).to_have_text("2 selected")
    # A day's date stands above its photos on a phone and beside them on a wide screen,
    # where a day of one photo is then one tile tall.
    beside = """s => s.querySelector('.day-head').getBoundingClientRect().right
                     <= s.querySelector('.tile').getBoundingClientRect().left"""
    day = page.locator("#grid section.day").first
    page.set_viewport_size(PHONE)
    assert not day.evaluate(beside)
    look(page, axe, "timeline-select-390.png")
    page.set_viewport_size(DESKTOP)
    assert day.evaluate(beside)
    look(page, axe, "timeline-select-1400.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#selection-bar").get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_have_text("Deleted 2 photos")
    expect(page.locator("#grid .tile")).to_have_count(len(photos) - 2)
    expect(page.locator("#selection-bar")).to_be_hidden()
    for pid in doomed:
        assert _request(stack, "GET", f"/v1/photos/{pid}", stack.token)[0] == 404


def test_failed_upload_shows_reason_and_no_useless_retry(
    stack: Stack, page: Any, axe: Callable[[Any], None], corpus: Path
) -> None:
    expect = playwright_api.expect
    sign_in(page, f"{stack.api}/", stack.token)
    page.set_input_files("#file-input", str(corpus / "bad/truncated_jpeg.jpg"))
    item = page.locator("#uploads .upload").first
    expect(item).to_have_attribute("data-state", "failed", timeout=LIVE_MS)
    expect(item.locator(".upload-status")).to_contain_text("Failed: this JPEG file is truncated")
    # The file itself is at fault (a DATA failure): a retry would fail the same way, so the
    # gallery offers none, and the api refuses one.
    expect(item.get_by_role("button", name="Retry truncated_jpeg.jpg")).to_have_count(0)
    photo_id = item.get_attribute("data-photo-id")
    _, photo = _request(stack, "GET", f"/v1/photos/{photo_id}", stack.token)
    assert photo["error"]["category"] == "DATA" and photo["error"]["retryable"] is False
    status, body = _request(stack, "POST", f"/v1/photos/{photo_id}/retry", stack.token)
    assert (status, body["error"]["code"]) == (409, "not_retryable")
    # Its bar is red.
    bar = item.locator("progress").evaluate("el => getComputedStyle(el).accentColor")
    assert bar == "rgb(198, 40, 40)", bar  # --bad
    # The failed photo is in the grid too, marked, and the status filter finds it alone.
    failed_tile = page.locator('#grid .tile[data-status="failed"]')
    expect(failed_tile).to_have_count(1)
    expect(failed_tile).to_contain_text("Couldn\u2019t process")
    expect(failed_tile).to_contain_text("truncated_jpeg.jpg")
    page.get_by_label("Status").select_option("failed")
    expect(page.locator("#grid .tile")).to_have_count(1)
    expect(page.locator('#grid .tile[data-status="failed"]')).to_have_count(1)
    # Its view says why instead of an empty picture, and offers no retry either.
    failed_tile.get_by_role("button").click()
    viewer = page.locator("#viewer")
    expect(viewer.locator("#viewer-empty")).to_be_visible()
    expect(viewer.locator("#viewer-reason")).to_contain_text("This JPEG file is truncated")
    expect(viewer.locator("#viewer-reason")).to_contain_text("damaged")
    expect(viewer.get_by_role("button", name="Retry")).to_be_hidden()
    expect(viewer.locator("#viewer-img")).to_be_hidden()
    look(page, axe, "photo-failed.png")
    page.set_viewport_size(PHONE)
    look(page, axe, "photo-failed-390.png")
    page.set_viewport_size(DESKTOP)
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_be_hidden()
    page.get_by_label("Status").select_option("completed")
    expect(page.locator('#grid .tile[data-status="failed"]')).to_have_count(0)


def test_refused_uploads_offer_a_retry_only_where_it_can_help(
    stack: Stack, page: Any, corpus: Path
) -> None:
    """A file refused as a bad file (415 not a photo, 400 empty) shows the server's reason
    and no Retry: sent again, it is refused the same way. An upload the server never
    answered (the api down) offers a Retry of at least 44 px at desktop width, which works
    once the api is back."""
    expect = playwright_api.expect
    sign_in(page, f"{stack.api}/", stack.token)
    page.set_input_files(
        "#file-input",
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo at all\n"},
            {"name": "empty0.jpg", "mimeType": "image/jpeg", "buffer": b""},
        ],
    )
    for name, reason in (("notes.txt", "not a supported photo"), ("empty0.jpg", "empty")):
        card = page.locator("#uploads .upload", has_text=name)
        expect(card).to_have_attribute("data-state", "failed", timeout=LIVE_MS)
        expect(card.locator(".upload-status")).to_contain_text(re.compile(reason, re.I))
        expect(card.get_by_role("button", name=f"Retry {name}")).to_have_count(0)

    stack.halt("web")
    try:
        page.set_input_files("#file-input", str(corpus / "real/Portrait_8.jpg"))
        card = page.locator("#uploads .upload", has_text="Portrait_8.jpg")
        expect(card).to_have_attribute("data-state", "failed", timeout=LIVE_MS)
    finally:
        stack.launch("web")
        stack.supervisor.wait_ready("web")
    retry = card.get_by_role("button", name="Retry Portrait_8.jpg")
    expect(retry).to_be_visible()
    box = retry.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44, box
    retry.click()
    expect(card).to_have_attribute("data-state", "completed", timeout=LIVE_MS)
    expect(retry).to_have_count(0)


def test_dashboard_browses_jobs_and_retries_a_failed_one(
    stack: Stack, page: Any, axe: Callable[[Any], None], corpus: Path
) -> None:
    expect = playwright_api.expect
    bad_id = upload(stack, corpus / "bad/BlueSquare_truncated.jpg", stack.token)
    sign_in(page, f"{stack.api}/dashboard", stack.admin_token)
    # Photos are counted as photos, jobs as jobs (a photo makes two).
    completed = page.locator('#photo-counts .count[data-state="completed"] dd')
    expect(completed).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#photo-counts dt").first).to_have_text("Queued")
    before = int(completed.inner_text())
    good_id = upload(stack, corpus / "real/HTC_Desire.jpg", stack.token)
    deadline = time.monotonic() + LIVE_MS / 1000
    while int(completed.inner_text()) <= before:
        assert time.monotonic() < deadline, "completed count did not rise"
        page.wait_for_timeout(300)
    jobs_done = page.locator("#tab-completed .tab-count")
    expect(jobs_done).to_have_text(re.compile(r"^\d+$"))
    assert int(jobs_done.inner_text()) > int(completed.inner_text())

    # Failed jobs are the first tab: the dead-lettered one is there with its category.
    job_id = f"photo:{bad_id}"
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row).to_contain_text("DATA")
    trace = row.locator("code.trace").inner_text().strip()
    assert len(trace) == 32, trace
    # Charts say their units, and a minute's tooltip says what it holds.
    expect(page.locator("#throughput-chart svg rect.bar-ok").first).to_be_visible()
    expect(page.locator("#throughput-chart svg text.unit").first).to_have_text("jobs / min")
    expect(page.locator("#stages-chart svg path")).to_have_count(4)
    expect(page.locator("#stages-chart svg text.unit").first).to_have_text("ms")
    # Over a minute that has a bar (or a point), the tooltip says what it holds.
    last_bar = page.locator("#throughput-chart svg rect.bar-ok").last
    last_bar.scroll_into_view_if_needed()
    bar = last_bar.bounding_box()
    page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    expect(page.locator("#throughput-chart .chart-tip")).to_contain_text("completed")
    # The last point of the validation line (the first series): the chart's last point
    # may be a minute in which only a follow-up job's optimization ran.
    expect(page.locator("#stages-chart .legend li").first).to_have_text("validation")
    color = page.locator("#stages-chart svg path").first.get_attribute("stroke")
    # On screen first: the mouse hovers only what is in the viewport.
    last_dot = page.locator(f'#stages-chart svg circle[fill="{color}"]').last
    last_dot.scroll_into_view_if_needed()
    dot = last_dot.bounding_box()
    page.mouse.move(dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2)
    expect(page.locator("#throughput-chart .chart-tip")).to_be_hidden()
    expect(page.locator("#stages-chart .chart-tip")).to_contain_text(
        re.compile(r"validation [\d.,]+ ms")
    )
    expect(page.locator("#bus-instances tr")).to_have_count(1, timeout=LIVE_MS)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, "the tooltip widened the page"
    look(page, axe, "dashboard.png", full_page=True)

    # The failed job's detail: its runs and error, trace id, payload and its photo.
    row.get_by_role("button", name=f"Details of job {job_id}").click()
    detail = page.locator("#job")
    expect(detail).to_be_visible()
    expect(page).to_have_url(re.compile(f"#job=photo%3A{bad_id}$"))
    expect(detail.locator('dd[data-field="trace-id"]')).to_have_text(trace)
    expect(detail.locator('.run[data-outcome="failed"] .error').first).to_contain_text("DATA")
    expect(detail.locator("#job-photo-caption")).to_contain_text("BlueSquare_truncated.jpg")
    link = detail.get_by_role("link", name="Open the photo")
    assert link.get_attribute("href") == f"/photos/{bad_id}"
    detail.locator("summary").click()
    expect(detail.locator("#job-payload")).to_contain_text(f'"photo_id": "{bad_id}"')
    look(page, axe, "job-detail-failed.png")
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    expect(page).to_have_url(f"{stack.api}/dashboard")

    # The tabs answer the arrow keys; a job opens with Enter.
    page.get_by_role("tab", name=re.compile("^Failed")).focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name=re.compile("^Completed"))).to_be_focused()
    expect(page.get_by_role("tab", name=re.compile("^Completed"))).to_have_attribute(
        "aria-selected", "true"
    )
    # A completed job: each stage's time, the photo's thumbnail.
    good = page.locator(f'#jobs tr[data-job-id="photo:{good_id}"]')
    expect(good).to_be_visible()
    good.get_by_role("button", name=f"Details of job photo:{good_id}").focus()
    page.keyboard.press("Enter")
    stages = detail.locator('.run[data-outcome="completed"] .stages-table tbody tr')
    expect(stages.nth(2)).to_be_visible()  # validation, metadata, thumbnails at least
    expect(stages.first).to_contain_text(re.compile(r"validation\s*[\d.,]+ (ms|s)"))
    thumb = detail.get_by_role("img", name="Thumbnail of HTC_Desire.jpg")
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("i => i.naturalWidth") > 0
    look(page, axe, "job-detail.png")
    # Its own address: a reload opens it again.
    page.reload()
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-job-id", f"photo:{good_id}")
    detail.get_by_role("button", name="Close").click()
    # Pages of twenty.
    _, listed = _request(
        stack, "GET", "/v1/queues/photo-processing/jobs?state=completed&limit=20", stack.admin_token
    )
    if listed["next_offset"] is not None:
        page.get_by_role("tab", name=re.compile("^Completed")).click()
        expect(page.locator("#jobs tr")).to_have_count(20)
        first_page = page.locator("#jobs tr").evaluate_all("rs => rs.map(r => r.dataset.jobId)")
        page.get_by_role("button", name="Next page").click()
        expect(page.locator("#jobs-range")).to_have_text(re.compile(r"^21\u2013"))
        second = page.locator("#jobs tr").evaluate_all("rs => rs.map(r => r.dataset.jobId)")
        assert second and not set(second) & set(first_page)
    page.get_by_role("tab", name=re.compile("^Failed")).click()

    _, jobs = _request(
        stack, "GET", "/v1/queues/photo-processing/jobs?state=failed", stack.admin_token
    )
    first_finish = next(j["finished_at_ms"] for j in jobs["items"] if j["job_id"] == job_id)
    row.get_by_role("button", name=f"Retry job {job_id}").click()
    expect(page.locator("#toast")).to_have_text("Job sent back to waiting")
    # It runs again (and, being corrupt, is dead-lettered again, later than before).
    deadline = time.monotonic() + LIVE_MS / 1000
    while True:
        _, jobs = _request(
            stack, "GET", "/v1/queues/photo-processing/jobs?state=failed", stack.admin_token
        )
        again = [j for j in jobs["items"] if j["job_id"] == job_id]
        if again and again[0]["finished_at_ms"] > first_finish:
            break
        assert time.monotonic() < deadline, "the retried job did not run again"
        time.sleep(0.3)

    # A client's (non-admin) gallery token is refused here without being forgotten.
    page.evaluate(
        "(t) => { localStorage.clear(); localStorage.setItem('filmstrip.token', t); }",
        stack.token,
    )
    page.reload()
    expect(page.locator("#sign-in-error")).to_have_text("That token is not an admin token.")
    assert page.evaluate("() => localStorage.getItem('filmstrip.token')") == stack.token
    sign_in(page, f"{stack.api}/dashboard", stack.admin_token)
    assert page.evaluate("() => localStorage.getItem('filmstrip.token')") == stack.token

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#paused-state")).to_have_text("Paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#paused-state")).to_have_text("Running")


def test_filters_and_the_job_tab_are_kept_in_the_address(
    stack: Stack, page: Any, axe: Callable[[Any], None]
) -> None:
    """A reload, back/forward and a shared link keep the gallery's filters and the
    dashboard's job tab and page; a photo opened under a filter keeps it in its address."""
    expect = playwright_api.expect
    _, listing = _request(stack, "GET", "/v1/photos?limit=100", stack.token)
    photos = listing["items"]
    failed = [p["photo_id"] for p in photos if p["status"] == "failed"]
    session_id = next(p["session_id"] for p in photos if p.get("session_id"))
    in_session = [p for p in photos if p.get("session_id") == session_id]
    assert failed and in_session, "earlier tests upload a failed photo and a session"
    tiles = page.locator("#grid .tile")
    status = page.get_by_label("Status")
    sign_in(page, f"{stack.api}/", stack.token)
    expect(tiles).to_have_count(len(photos))
    status.select_option("failed")
    expect(page).to_have_url(f"{stack.api}/?status=failed")
    expect(tiles).to_have_count(len(failed))
    # A photo opened under the filter keeps it; reloaded and closed, the filter is still on.
    opened = tiles.first.get_attribute("data-photo-id")
    tiles.first.get_by_role("button").click()
    expect(page).to_have_url(f"{stack.api}/photos/{opened}?status=failed")
    page.reload()
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-photo-id", opened)
    viewer.get_by_role("button", name="Close").click()
    expect(page).to_have_url(f"{stack.api}/?status=failed")
    expect(status).to_have_value("failed")
    expect(tiles).to_have_count(len(failed))
    # Back is the unfiltered gallery, forward the filtered one.
    page.go_back()
    expect(page).to_have_url(f"{stack.api}/")
    expect(status).to_have_value("")
    expect(tiles).to_have_count(len(photos))
    page.go_forward()
    expect(status).to_have_value("failed")
    expect(tiles).to_have_count(len(failed))
    # A filter changed at once after closing a photo (whose close goes back in the history,
    # which lands later) stays as chosen.
    tiles.first.get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/photos/.*\?status=failed$"))
    page.evaluate(
        """() => new Promise((landed) => {
            addEventListener("popstate", landed, { once: true });
            const viewer = document.querySelector("#viewer");
            viewer.addEventListener("close", () => {
                const status = document.querySelector("#filter-status");
                status.value = "completed";
                status.dispatchEvent(new Event("change", { bubbles: true }));
            }, { once: true });
            viewer.querySelector("#viewer-close").click();
        })"""
    )
    expect(page).to_have_url(f"{stack.api}/?status=completed")
    expect(status).to_have_value("completed")
    expect(tiles).to_have_count(sum(p["status"] == "completed" for p in photos))
    # A shared link to one session's photos, at both widths.
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto(f"{stack.api}/?session={session_id}&status=")
        expect(page.get_by_label("Session")).to_have_value(session_id)
        expect(tiles).to_have_count(len(in_session))
        look(page, axe, f"gallery-filtered-{size['width']}.png")

    # The dashboard: the tab and page shown are in the address.
    _, completed = _request(
        stack, "GET", "/v1/queues/photo-processing/jobs?state=completed&limit=20", stack.admin_token
    )
    sign_in(page, f"{stack.api}/dashboard", stack.admin_token)
    expect(page.get_by_role("tab", name=re.compile("^Failed"))).to_have_attribute(
        "aria-selected", "true"
    )
    page.get_by_role("tab", name=re.compile("^Completed")).click()
    expect(page).to_have_url(f"{stack.api}/dashboard?state=completed")
    shared = f"{stack.api}/dashboard?state=completed"
    first_row = "1\u2013"
    if completed["next_offset"] is not None:
        page.get_by_role("button", name="Next page").click()
        expect(page).to_have_url(f"{stack.api}/dashboard?state=completed&page=2")
        shared, first_row = f"{shared}&page=2", "21\u2013"
    expect(page.locator("#jobs-range")).to_have_text(re.compile(f"^{first_row}"))
    # A job's detail opened and closed there leaves the tab and page in the address.
    page.locator("#jobs button.open-job").first.click()
    expect(page.locator("#job")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#job")).to_be_hidden()
    expect(page).to_have_url(shared)
    page.reload()
    expect(page.get_by_role("tab", name=re.compile("^Completed"))).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#jobs-range")).to_have_text(re.compile(f"^{first_row}"))
    page.go_back()
    if first_row != "1\u2013":
        expect(page.locator("#jobs-range")).to_have_text(re.compile("^1\u2013"))
        page.go_back()
    expect(page.get_by_role("tab", name=re.compile("^Failed"))).to_have_attribute(
        "aria-selected", "true"
    )
    page.go_forward()
    expect(page.get_by_role("tab", name=re.compile("^Completed"))).to_have_attribute(
        "aria-selected", "true"
    )
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto(shared)
        expect(page.get_by_role("tab", name=re.compile("^Completed"))).to_have_attribute(
            "aria-selected", "true"
        )
        expect(page.locator("#jobs-range")).to_have_text(re.compile(f"^{first_row}"))
        look(page, axe, f"dashboard-jobs-{size['width']}.png")


def test_api_docs_from_the_gallery_footer_list_every_operation_from_here_alone(
    stack: Stack, page: Any
) -> None:
    """``/docs`` (Swagger UI from the wheel, served by the api) is linked from the gallery's
    footer, lists every operation of the served OpenAPI document, and loads nothing from
    anywhere but this server (a CSP violation would fail the ``page`` fixture too)."""
    expect = playwright_api.expect
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{stack.api}/")
    page.locator("footer").get_by_role("link", name="API documentation").click()
    expect(page).to_have_url(f"{stack.api}/docs")
    status, document = _request(stack, "GET", "/v1/openapi.json", stack.token)
    assert status == 200
    methods = {"get", "put", "post", "delete", "options", "head", "patch"}
    operations = [
        (method, path)
        for path, ops in document["paths"].items()
        for method in ops
        if method in methods
    ]
    expect(page.locator(".opblock")).to_have_count(len(operations), timeout=LIVE_MS)
    expect(page.locator(".info .title")).to_contain_text("Filmstrip")
    # Open one operation: its body and answers render from the document.
    check = page.locator(".opblock-post").filter(has_text="/v1/photos/check")
    check.locator(".opblock-summary").click()
    expect(page.locator(".opblock.is-open .responses-wrapper")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / "api-docs.png"))

    elsewhere = [
        url for url in requested if not url.startswith(("data:", "blob:", stack.api + "/"))
    ]
    assert not elsewhere, elsewhere
    assert f"{stack.api}/docs/assets/swagger-ui-bundle.js" in requested


def test_a_photo_deleted_on_another_device_leaves_the_open_gallery(
    stack: Stack, page: Any, corpus: Path, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    # Bytes no other test sends (a duplicate would be another test's photo): the JPEG with
    # a few bytes after its end, which decoders ignore.
    path = tmp_path / "elsewhere.jpg"
    path.write_bytes((corpus / "real/Canon_EOS_7D.jpg").read_bytes() + uuid.uuid4().bytes)
    photo_id = upload(stack, path, stack.token)
    wait_for_status(stack, photo_id, "completed")
    sign_in(page, f"{stack.api}/?page=100", stack.token)
    expect(page.locator("#bus-status")).to_have_text("Live", timeout=LIVE_MS)
    tile = page.locator(f'#grid .tile[data-photo-id="{photo_id}"]')
    tile.locator("button").click()
    expect(page.locator("#viewer")).to_be_visible()
    # The other device deletes it: this page learns it from the bus, with no reload.
    assert _request(stack, "DELETE", f"/v1/photos/{photo_id}", stack.token)[0] == 204
    expect(page.locator("#viewer")).to_be_hidden()
    expect(page.locator("#toast")).to_have_text("That photo was deleted on another device.")
    expect(tile).to_have_count(0)
