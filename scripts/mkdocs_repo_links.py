"""MkDocs hook: links from docs/ to the repository's own files, e.g. ``[results](../bench/README.md)``.

MkDocs resolves every relative link among the site's pages, so ``--strict`` refuses a link that
leaves ``docs/``. Such links are wanted: the measurements live in bench/, the defaults in src/.
They work as written on the git host, and in a site built inside a checkout too, because
``use_directory_urls: false`` keeps ``docs/x.md`` at ``site/x.html``, the same depth. This hook
hides them from MkDocs' check while the page renders and puts them back unchanged afterwards;
a link whose file does not exist is a warning, so ``--strict`` still fails on it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.repo_links")

# A scheme MkDocs leaves alone (absolute links are not checked); removed again after rendering.
MARK = "repo-file:"
# A Markdown link or image whose target climbs out of the page's folder: ](../path) or ](../path#anchor)
LINK = re.compile(r"(\]\()(\.\./[^)\s#]*)(#[^)\s]*)?(\))")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs = Path(config["docs_dir"]).resolve()
    folder = (docs / page.file.src_path).parent

    def hide(match: re.Match) -> str:
        target = (folder / match.group(2)).resolve()
        if target == docs or docs in target.parents:
            return match.group(0)  # a page of the site: MkDocs checks it
        if not target.exists():
            log.warning("Doc file '%s' links to '%s', which is not in the repository", page.file.src_path, match.group(2))
        return f"{match.group(1)}{MARK}{match.group(2)}{match.group(3) or ''}{match.group(4)}"

    # Code blocks show links as text: leave them as they are.
    pieces, last = [], 0
    for block in FENCE.finditer(markdown):
        pieces += [LINK.sub(hide, markdown[last:block.start()]), block.group(0)]
        last = block.end()
    return "".join(pieces) + LINK.sub(hide, markdown[last:])


def on_page_content(html: str, page, config, files) -> str:
    return html.replace(f'href="{MARK}', 'href="').replace(f'src="{MARK}', 'src="')
