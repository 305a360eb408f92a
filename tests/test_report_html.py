"""report.html: one self-contained file (no network, no JavaScript), opened in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from report_synthetic import two_config_sweep

from orchestrator.report import build_report, load_sweep_dir
from orchestrator.report.write import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the project's machines run it: headless, and nothing that reaches for the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    report = build_report(load_sweep_dir(two_config_sweep().write_dir(root)), baseline=["method.beta=0"])
    written = write_report(report, root / "out")
    assert written.file("report.html") in written.files
    return written.file("report.html")


def test_the_page_is_self_contained(page):
    text = page.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text), "no external resource"
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)
    assert len(images) >= 3 + 2  # the report's figures and each configuration's seed curves
    for section in (
        "Configurations, ranked by",
        "Paired comparisons",
        "Figures",
        "Configurations in detail",
        "Provenance",
    ):
        assert section in text, section
    assert "method.beta=0.5" in text and "at commit <code>" in text


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_chromium_renders_tables_and_images(page, tmp_path):
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count("<table") >= 4  # ranked, two comparisons, details
    assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64,", html)) >= 5
    assert "Provenance" in html

    shot = tmp_path / "shot.png"
    result = _chromium("--window-size=1200,1500", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    import numpy as np
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1500)
    dark = int((np.asarray(image) < 200).sum())
    assert dark > 0.02 * 1200 * 1500, f"only {dark} non-blank pixels: the page did not render"
