"""`avsr preprocess --shard K/N` and `--merge-shards N`: shards merge into exactly one unsharded run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from avsr.cli import main as avsr_main
from avsr.errors import UserError
from preprocessing.clip import PreprocessConfig, read_input
from preprocessing.pipeline import run
from preprocessing.shard_merge import ShardsNotDone, merge_shards
from preprocessing.shards import Shard
from tests.helpers.preprocess_shards import assert_same_outputs, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clips.tsv, the folder of one unsharded run over it)."""
    root = tmp_path_factory.mktemp("shards")
    tsv = write_corpus(root / "raw")
    ref = root / "ref"
    run(read_input(tsv), ref, PreprocessConfig(), show_progress=False)
    return tsv, ref


def test_shard_parse_and_split() -> None:
    assert Shard.parse("3/64") == Shard(3, 64)
    assert Shard(1, 3).name == "1-of-3"
    for bad in ("3", "4/4", "-1/4", "a/b", "0/0"):
        with pytest.raises(UserError):
            Shard.parse(bad)
    items = list(range(10))
    parts = [Shard(k, 4).select(items) for k in range(4)]  # type: ignore[arg-type]
    assert parts[1] == [1, 5, 9]
    assert sorted(i for p in parts for i in p) == items


def test_shards_merge_into_the_unsharded_run(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    tsv, ref = corpus
    clips = read_input(tsv)
    out = tmp_path / "out"
    for k in (0, 1, 3):
        run(clips, out, PreprocessConfig(), show_progress=False, shard=Shard(k, 4))
    assert not (out / "test.tsv").exists()  # shards write no manifests
    # shard 2 was killed: a torn report line, a temporary file; another shard's temp file too
    (out / "shards" / "report.2-of-4.jsonl").write_text('{"id": "de3", "sta')
    (out / "video" / ".de3.mp4.x1.tmp").write_bytes(b"partial")
    other_tmp = out / "video" / ".en1.mp4.x2.tmp"  # en1 is clip 3: shard 3's
    other_tmp.write_bytes(b"partial")
    with pytest.raises(ShardsNotDone) as err:
        merge_shards(clips, out, 4)
    assert err.value.shards == [2]
    assert "shard 2/4: not finished" in str(err.value)
    before = (out / "shards" / "report.0-of-4.jsonl").read_bytes()

    run(clips, out, PreprocessConfig(), show_progress=False, shard=Shard(2, 4))  # reruns alone
    assert other_tmp.exists() and not (out / "video" / ".de3.mp4.x1.tmp").exists()
    other_tmp.unlink()
    assert (out / "shards" / "report.0-of-4.jsonl").read_bytes() == before
    summary = merge_shards(clips, out, 4)
    assert summary["statuses"] == {"ok": 5, "skipped": 1}
    assert_same_outputs(ref, out)


def test_merge_refuses_shards_of_another_input(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    tsv, _ = corpus
    clips = read_input(tsv)[:2]  # noface is not among them: quick
    out = tmp_path / "out"
    for k in range(2):
        run(clips, out, PreprocessConfig(), show_progress=False, shard=Shard(k, 2))
    merge_shards(clips, out, 2)
    changed = [dataclasses.replace(clips[0], text="other words"), clips[1]]
    with pytest.raises(ShardsNotDone, match="another clip list") as err:
        merge_shards(changed, out, 2)
    assert err.value.shards == [0, 1]
    with pytest.raises(ShardsNotDone, match="shard 2/3: not finished"):
        merge_shards(clips, out, 3)
    cfg1 = out / "shards" / "preprocess.1-of-2.yaml"
    cfg1.write_text(cfg1.read_text().replace("crf: 18", "crf: 20"))
    with pytest.raises(ShardsNotDone, match="shard 1/2: ran with another config"):
        merge_shards(clips, out, 2)
    (out / "audio" / "de1.wav").unlink()
    with pytest.raises(ShardsNotDone, match="shard 0/2: the video or audio of 1 ok clip"):
        merge_shards(clips, out, 2)


def test_cli_names_the_missing_shard(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tsv, _ = corpus
    out = tmp_path / "out"
    base = ["preprocess", "--input", str(tsv), "--out", str(out), "--no-progress"]
    assert avsr_main([*base, "--shard", "1/3"]) == 0
    assert (out / "shards" / "done.1-of-3.json").is_file()
    assert avsr_main([*base, "--merge-shards", "3"]) == 2
    msg = capsys.readouterr().err
    assert "shard 0/3: not finished" in msg and "shard 2/3: not finished" in msg
    assert "shard 1/3" not in msg
    assert avsr_main([*base, "--shard", "3/3"]) == 2  # K must be below N
