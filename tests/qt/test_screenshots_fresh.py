"""The README's screenshots show the window as the code draws it now: they are rendered by
``tests/screenshots.py``, which stamps them with a digest of the code they show."""

from __future__ import annotations

import re

from tests import screenshots


def test_every_readme_screenshot_is_made_by_the_script():
    readme = (screenshots.ROOT / "README.md").read_text()
    used = set(re.findall(r"resources/screenshots/([\w.-]+\.png)", readme))
    assert used and used <= set(screenshots.SHOTS), used - set(screenshots.SHOTS)
    for name in used:
        assert (screenshots.OUT / name).stat().st_size > 10_000, name


def test_screenshots_are_younger_than_the_code_they_show():
    """Two README screenshots predated the Lessons menu and the Fine-tune button."""
    stamp = screenshots.STAMP.read_text().strip() if screenshots.STAMP.exists() else "(none)"
    assert stamp == screenshots.sources_digest(), (
        "the window's code changed since the README screenshots were made: "
        "run `python tests/screenshots.py` and commit resources/screenshots/"
    )
