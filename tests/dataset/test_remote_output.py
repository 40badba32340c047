"""An output folder on another filesystem (an fsspec URL): written here, uploaded whole once complete."""

from __future__ import annotations

import datasets
import fsspec

from attrprompt_builder.cli import main


def test_generate_to_an_fsspec_url_uploads_the_whole_folder(tgi, tmp_path, capsys):
    fs = fsspec.filesystem("memory")
    url = "memory://runs/sst2"
    code = main([
        "generate", "sst2", "--endpoint", tgi.url, "-n", "5", "--dedup-threshold", "off", "--output", url,
        "--journal-dir", str(tmp_path / "journal"), "--cache-dir", str(tmp_path / "cache"),
    ])  # fmt: skip
    assert code == 0
    assert f"wrote {url}" in capsys.readouterr().out
    names = {path.rsplit("/", 1)[-1] for path in fs.find("/runs/sst2")}
    assert {"README.md", "recipe.yaml", "generation.json"} <= names
    shards = fs.glob("/runs/sst2/data/train-*.parquet")
    assert shards
    rows = datasets.load_dataset("parquet", data_files=[f"memory://{path}" for path in shards], split="train")
    assert rows.num_rows == 10
