"""LocalLake: keys map to files under `<home>/lake`, and no key reaches outside it."""

import os

import pytest

from finbi_pipeline.resources.lake import LocalLake


def test_keys_stay_inside_the_lake_folder(tmp_path):
    lake = LocalLake(home=str(tmp_path))
    root = (tmp_path / "lake").resolve()
    assert lake.uri("raw/shop/a/../b.csv") == str(root / "raw/shop/b.csv")
    for key in ("../outside.csv", "raw/../../outside.csv", "/etc/passwd"):
        with pytest.raises(ValueError, match="escapes the lake folder"):
            lake.uri(key)


def test_a_link_to_a_folder_is_no_object_and_a_link_to_a_file_is(tmp_path):
    lake = LocalLake(home=str(tmp_path / "home"))
    lake.write_bytes("raw/shop/a.csv", b"a")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.csv").write_bytes(b"bb")
    folder = tmp_path / "home" / "lake" / "raw" / "shop"
    (folder / "folder-link").symlink_to(elsewhere, target_is_directory=True)
    (folder / "file-link.csv").symlink_to(elsewhere / "b.csv")

    listed = {obj.key: obj.size for obj in lake.list_objects("raw/shop/")}

    assert listed == {"raw/shop/a.csv": 1, "raw/shop/file-link.csv": 2}


def test_a_name_that_is_no_text_or_a_looping_link_is_left_out_saying_so(tmp_path, caplog):
    lake = LocalLake(home=str(tmp_path))
    lake.write_bytes("raw/shop/a.csv", b"a")
    folder = os.fsencode(tmp_path / "lake" / "raw" / "shop")
    with open(os.path.join(folder, b"caf\xe9.csv"), "wb") as latin1_name:  # from an old zip
        latin1_name.write(b"x")
    os.symlink(b"loop.csv", os.path.join(folder, b"loop.csv"))
    os.mkdir(os.path.join(folder, b"..", b"caf\xe9"))

    assert [obj.key for obj in lake.list_objects("raw/shop/")] == ["raw/shop/a.csv"]
    assert lake.list_children("raw/") == (["raw/shop/"], [])
    assert "raw/shop/caf\\xe9.csv: not listed in the lake, never ingested: its name is not" in (
        caplog.text
    )
    assert "raw/shop/loop.csv: not listed in the lake, never ingested: Too many levels" in (
        caplog.text
    )
    assert "raw/caf\\xe9: not listed" in caplog.text


def test_a_long_name_is_written(tmp_path):
    lake = LocalLake(home=str(tmp_path))
    key = "raw/shop/" + "n" * 246 + ".csv"  # 250 bytes: the file system's limit is 255

    lake.write_bytes(key, b"data")

    assert lake.read_bytes(key) == b"data"


def test_a_long_name_in_a_script_of_three_bytes_a_character_is_written(tmp_path):
    lake = LocalLake(home=str(tmp_path))
    key = "raw/shop/" + "日" * 83 + ".csv"  # 253 bytes

    lake.write_bytes(key, b"data")

    assert lake.read_bytes(key) == b"data"


def test_children_are_the_folders_and_files_directly_under_a_prefix(tmp_path):
    lake = LocalLake(home=str(tmp_path))
    for key in ("raw/sales/a.csv", "raw/sale/b/c.csv", "raw/loose.csv", "raw/.hidden"):
        lake.write_bytes(key, b"x")
    assert lake.list_children("raw/") == (["raw/sale/", "raw/sales/"], ["raw/loose.csv"])
    assert lake.list_children("nothing/") == ([], [])
