"""The documentation cannot rot: README.md stays a front door, docs/ builds as a MkDocs site with --strict
(every page in the nav, every link and anchor between pages resolves), and every relative link in README.md,
docs/ and bench/README.md names a file, and for a Markdown file a heading, that exists."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
REPORT_PICTURE = ROOT / "docs" / "images" / "report.png"

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title"), ![alt](target)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def slugify(heading: str) -> str:
    """The anchor of a heading as MkDocs makes it (Python-Markdown's toc slugify); the git host's agrees for the
    plain headings these documents use."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def prose(markdown: str) -> str:
    """The text outside code blocks and code spans, where a link is a link."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def anchors(path: Path) -> set[str]:
    return {slugify(heading) for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def broken_links(paths: list[Path]) -> list[str]:
    """'<file>: <target> (<why>)' for every relative link whose file or heading does not exist."""
    problems = []
    for path in paths:
        for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
            if SCHEME.match(target) or target.startswith("/"):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}: {target}"
            if not linked.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where} (no such heading in {linked.name})")
    return problems


def nav_pages(nav: list) -> list[str]:
    """The Markdown files of a MkDocs nav, sections included."""
    pages = []
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, capture_output=True, text=True, timeout=120)


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES, "README.md is the front door: move reference text to docs/"
    assert "make repro" in readme and "make test" in readme
    assert "docs/images/report.png" in readme  # the report's picture, made by tests/test_report_browser.py


def test_every_relative_link_resolves() -> None:
    assert broken_links(documents()) == []


def test_the_link_check_finds_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Its `code` section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#its-code-section) [top](#page) ![picture](missing.png)\n"
                    "[gone](other.md#nowhere) [web](https://example.org/x.md) `[code](not-a-link.md)`\n\n"
                    "```\n[in a block](neither.md)\n```\n", encoding="utf-8")
    assert broken_links([page]) == ["page.md: missing.png (no such file)",
                                    "page.md: other.md#nowhere (no such heading in other.md)"]


def test_the_site_builds_strict_with_every_page(tmp_path: Path) -> None:
    done = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    pages = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    assert sorted(pages) == sorted(str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        assert (tmp_path / "site" / page).with_suffix(".html").is_file()
    assert (tmp_path / "site" / "images" / "report.png").is_file()


def test_a_link_out_of_docs_must_name_a_file_of_the_repository(tmp_path: Path) -> None:
    """Links to the repository's own files (bench/README.md) pass the strict build only when the file exists."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "present.md").write_text("# here\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: t\nuse_directory_urls: false\nhooks:\n  - {ROOT / 'scripts' / 'mkdocs_repo_links.py'}\n"
                      "nav:\n  - index.md\n", encoding="utf-8")
    (tmp_path / "docs" / "index.md").write_text("# t\n\n[results](../present.md)\n", encoding="utf-8")
    built = mkdocs_build(config, tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    assert 'href="../present.md"' in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")

    (tmp_path / "docs" / "index.md").write_text("# t\n\n[results](../absent.md)\n", encoding="utf-8")
    refused = mkdocs_build(config, tmp_path / "site")
    assert refused.returncode != 0
    assert "../absent.md" in refused.stderr


def test_the_report_picture_is_a_small_real_screenshot() -> None:
    """docs/images/report.png as tests/test_report_browser.py writes it: the top of the page, not blank, small."""
    assert REPORT_PICTURE.stat().st_size < 300_000
    with Image.open(REPORT_PICTURE) as image:
        assert image.format == "PNG" and image.width == 1280 and 600 <= image.height <= 2400
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20
