"""The dataset card shows input as text (issue 14 row 8) and tells the real source's provenance,
licence and citation, not the demo's (row 9). Rendered with markdown-it (CommonMark with HTML
allowed, as permissive viewers are, plus GFM tables)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from histosynth.config import params_from_mapping
from histosynth.package.markdown import code, code_block, paragraphs, text
from histosynth.package.stage import build_package
from package_inputs import write_package_inputs

EVIL_CLASSES = ("<img src=x onerror=alert(1)>", "a | b `c` *d* [x](javascript:alert(1))", "## NA <!--")


def render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)


def card_of(tmp_path: Path, classes: tuple[str, ...] = ("one", "two", "three"), **params: object) -> str:
    inputs = write_package_inputs(tmp_path / "inputs", classes=classes, per_split=1, n_synthetic=1)
    sections = {"qa": {"enforce": True}, **{k: v for k, v in params.items() if k in ("data", "package")}}
    build_package(params_from_mapping(sections), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics,
                  tmp_path / "package", revision="<b>rev</b>")
    return (tmp_path / "package" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("value", [*EVIL_CLASSES, "1. item", "- item", "# h", "x_y_z _e_ **s**", "~~gone~~",
                                   "&lt;script&gt;", "`a``b`", "line\nbreak", "trailing \\"])
def test_text_renders_as_exactly_its_characters(value: str) -> None:
    flat = " ".join(value.split())
    shown = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert render(f"x {text(value)}") == f"<p>x {shown}</p>\n"  # inline, after other text
    assert render(paragraphs(value)) == f"<p>{shown}</p>\n"  # at the start of a line
    assert render(code(value)).startswith("<p><code>") and "<img" not in render(code(value))
    block = render(code_block(value + "\n```\n<script>"))
    assert block.startswith("<pre><code>") and block.count("<pre>") == 1 and "<script>" not in block


def test_the_card_shows_hostile_input_as_text(tmp_path: Path) -> None:
    card = card_of(tmp_path, EVIL_CLASSES, package={"name": "<script>alert(1)</script>",
                                                    "licence": "<b>CC</b> [x](javascript:1)",
                                                    "citation": "```\n<script>alert(2)</script>"})
    html = render(card)
    assert not re.search(r"<(img|script|b|a)\b", html), html
    assert "javascript:" not in re.findall(r'href="([^"]*)"', html)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    counts = html.split("<h2>Classes</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", counts, flags=re.S)
    assert len(rows) == 1 + 3 + 1 and all(row.count("<t") == 8 for row in rows)  # no cell split by a '|'
    assert "a | b `c` *d* [x](javascript:alert(1))" in re.sub(r"<[^>]+>", "", counts).replace("&lt;", "<")


def test_a_folder_source_without_provenance_says_unknown_and_warns(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        card = card_of(tmp_path, data={"source": "folder:/data/cells"})
    assert "scikit-image" not in card and "immunohistochemistry" not in card
    assert "who made them and how is unknown" in card
    assert "Unknown: package.source_licence is not set. Do not redistribute" in card
    assert "unknown (package.source_citation is not set)" in card
    assert any("package.source_description, package.source_licence, package.source_citation not set" in r.message
               for r in caplog.records if r.levelno == logging.WARNING)


def test_a_folder_source_takes_its_provenance_from_params(tmp_path: Path) -> None:
    card = card_of(tmp_path, data={"source": "folder:/data/cells"},
                   package={"source_description": "Pap smears of the Riverside cytology lab, 2019.",
                            "source_licence": "CC BY-NC 4.0", "source_citation": "Doe et al., Cytology 12 (2020)"})
    assert "**Real images.** Pap smears of the Riverside cytology lab, 2019." in card
    assert "**Licence of the real images.** CC BY-NC 4.0" in card
    assert "Doe et al., Cytology 12 (2020)" in card and "scikit-image" not in card


def test_builtin_and_medmnist_sources_describe_themselves(tmp_path: Path) -> None:
    demo = card_of(tmp_path / "demo")
    assert "skimage.data.immunohistochemistry" in demo and "No known copyright restrictions" in demo
    assert "scikit-image: image processing in Python. PeerJ 2, e453 (2014)" in demo
    derma = card_of(tmp_path / "derma", data={"source": "medmnist:dermamnist", "image_size": 28})
    assert "**Licence of the real images.** CC BY-NC 4.0 (as medmnist.INFO gives it for dermamnist)" in derma
    assert "MedMNIST v2 - A large-scale lightweight benchmark" in derma and "scikit-image" not in derma
