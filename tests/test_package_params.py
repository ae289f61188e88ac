"""package.* params: defaults, and a clear error for each bad value."""

from __future__ import annotations

import pytest

from histosynth.config import params_from_mapping
from histosynth.errors import ConfigError


def test_defaults_package_every_real_split_with_links() -> None:
    package = params_from_mapping({}).package
    assert (package.name, package.version, package.real_splits, package.link) == \
        ("histosynth-demo", "1.0.0", ["train", "val", "test"], "auto")
    assert (package.licence, package.citation) == ("", "")  # the card takes the licence from the source
    assert (package.source_description, package.source_licence, package.source_citation) == ("", "", "")


@pytest.mark.parametrize("version", ["2.0.0", "1.10.3-rc.1", "0.1.0+build.7"])
def test_semantic_versions_are_accepted(version: str) -> None:
    assert params_from_mapping({"package": {"version": version}}).package.version == version


@pytest.mark.parametrize(("package", "message"), [
    ({"version": "1.0"}, "package.version = '1.0': must be a semantic version"),
    ({"version": "01.0.0"}, "must be a semantic version"),
    ({"real_splits": ["test", "test"]}, "package.real_splits = ['test', 'test']: lists a split twice"),
    ({"real_splits": []}, "package.real_splits"),
    ({"real_splits": ["holdout"]}, "package.real_splits.0 = 'holdout'"),
    ({"link": "symlink"}, "package.link = 'symlink'"),
    ({"name": ""}, "package.name"),
    ({"licence_url": "x"}, "unknown key(s) licence_url"),
])
def test_bad_values_name_the_key(package: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        params_from_mapping({"package": package})
    assert message in str(err.value)
