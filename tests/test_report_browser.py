"""The HTML report in headless Chromium (Debian `chromium`): it loads offline, every image decodes, and the
screenshot in docs/ comes from here (HISTOSYNTH_UPDATE_SCREENSHOT=1 rewrites docs/images/report.png)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histosynth.report import build_report
from report_inputs import images_in_report, write_report_inputs

CHROMIUM = shutil.which("chromium")
MISSING = "Debian `chromium` is not installed (scripts/install_test_services.sh installs it)"
# The picture of the report in README.md and docs/report.md: the top of the page (title, overview, quality gates).
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "report.png"
DOCS_SCREENSHOT_HEIGHT = 1370


@pytest.fixture(autouse=True)
def _need_chromium():
    if CHROMIUM is None:
        if os.environ.get("HISTOSYNTH_REQUIRE_TEST_SERVICES") == "1":  # CI: never skip
            pytest.fail(MISSING)
        pytest.skip(MISSING)


def chromium(page: Path, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``page`` with no network features and a throwaway profile; its stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered_images(page: Path, profile: Path) -> tuple[int, int]:
    """(images decoded, images in the page), as the page's load handler records them on <body>."""
    dom = chromium(page, profile, "--dump-dom")
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    counts = dict(re.findall(r'data-images-(rendered|total)="(\d+)"', body.group(0)))
    assert counts.keys() == {"rendered", "total"}, body.group(0)
    return int(counts["rendered"]), int(counts["total"])


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(write_report_inputs(tmp_path_factory.mktemp("browser") / "project"))


def test_every_image_renders(page: Path, tmp_path: Path) -> None:
    assert rendered_images(page, tmp_path / "profile") == (images_in_report(), images_in_report())


def test_a_broken_image_is_caught(page: Path, tmp_path: Path) -> None:
    """The check above can fail: one image whose data is not a PNG does not count as rendered."""
    html = page.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,AAAA", html, count=1), encoding="utf-8")
    assert rendered_images(broken, tmp_path / "profile") == (images_in_report() - 1, images_in_report())


def test_screenshot_shows_the_page(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    # tall enough to reach the first class's sample grids below the overview and the gate tables
    chromium(page, tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,3200", f"--screenshot={shot}")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape == (3200, 1280, 3)
    assert pixels.std() > 20  # text, tables and images, not a blank page
    # The red blobs of the first class's sample grids (conftest.textured_image) are on screen.
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 100)
    assert red.sum() > 1000

    picture = docs_picture(shot, tmp_path / "report.png")
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.size == (1280, DOCS_SCREENSHOT_HEIGHT)
        top = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert top.std() > 20  # the title, the tables and their badges, not a blank crop
    assert picture.stat().st_size < 300_000
    if os.environ.get("HISTOSYNTH_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, DOCS_SCREENSHOT)


def docs_picture(shot: Path, out: Path) -> Path:
    """The top of a screenshot, in 256 colours (a page of flat colours and text loses nothing visible): small
    enough to commit."""
    with Image.open(shot) as image:
        top = image.convert("RGB").crop((0, 0, image.width, DOCS_SCREENSHOT_HEIGHT))
    top.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    return out
