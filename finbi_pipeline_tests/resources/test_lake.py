"""LocalLake: keys map to files under `<home>/lake`, and no key reaches outside it."""

import pytest

from finbi_pipeline.resources.lake import LocalLake


def test_keys_stay_inside_the_lake_folder(tmp_path):
    lake = LocalLake(home=str(tmp_path))
    root = (tmp_path / "lake").resolve()
    assert lake.uri("raw/shop/a/../b.csv") == str(root / "raw/shop/b.csv")
    for key in ("../outside.csv", "raw/../../outside.csv", "/etc/passwd"):
        with pytest.raises(ValueError, match="escapes the lake folder"):
            lake.uri(key)
