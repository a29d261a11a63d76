"""``avsr data muavic`` on MuAViC-shaped trees in the published layout (tiny real media)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avsr.cli import main
from avsr.data import AVDataset, DataConfig, write_video_gray
from avsr.data.targets import read_split, target_files

SPLITS = ("train", "valid", "test")
FRAMES = 4
SAMPLES = FRAMES * 640


def _clip_ids(lang: str, split: str) -> list[str]:
    """Two ids per split, shaped like MuAViC's (LRS3 ``speaker/00001``, mTEDx ``talk/talk_0001``)."""
    if lang == "en":
        return [f"spk{split}/{i:05d}" for i in (1, 2)]
    talk = f"{lang}{split}talk"
    return [f"{talk}/{talk}_{i:04d}" for i in (1, 2)]


def _write_media(lang_dir: Path, split: str, cid: str, seed: int) -> tuple[Path, Path]:
    video = lang_dir / "video" / split / f"{cid}.mp4"
    audio = lang_dir / "audio" / split / f"{cid}.wav"
    video.parent.mkdir(parents=True, exist_ok=True)
    audio.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_video_gray(video, rng.integers(0, 255, size=(FRAMES, 96, 96), dtype=np.uint8))
    sf.write(audio, (0.1 * rng.standard_normal(SAMPLES)).astype(np.float32), 16000, subtype="PCM_16")
    return video, audio


def make_muavic(root: Path, langs: tuple[str, ...] = ("en", "es", "fr")) -> Path:
    """``root/muavic`` as MuAViC's scripts leave it: per language ``audio/``, ``video/``,
    ``{split}.tsv`` (root line ``/``, absolute paths), ``{split}.{lang}`` (no final newline);
    es-en translation in ``es/en/{split}.tsv`` + ``.en`` + ``.es``, fr-en in ``fr/en/{split}_avst.*``."""
    muavic = root / "muavic"
    seed = 0
    for lang in langs:
        d = muavic / lang
        for split in SPLITS:
            rows, texts = [], []
            for cid in _clip_ids(lang, split):
                video, audio = _write_media(d, split, cid, seed)
                seed += 1
                rows.append(f"{cid}\t{video}\t{audio}\t{FRAMES}\t{SAMPLES}")
                texts.append(f"{lang} words of {cid}")
            tsv = "/\n" + "\n".join(rows) + "\n"
            (d / f"{split}.tsv").write_text(tsv)
            (d / f"{split}.{lang}").write_text("\n".join(texts))
            english = "\n".join(f"english of {cid}" for cid in _clip_ids(lang, split))
            if lang == "es":
                (d / "en").mkdir(exist_ok=True)
                (d / "en" / f"{split}.tsv").write_text(tsv)
                (d / "en" / f"{split}.en").write_text(english)
                (d / "en" / f"{split}.es").write_text("\n".join(texts))
            elif lang == "fr":
                (d / "en").mkdir(exist_ok=True)
                (d / "en" / f"{split}_avst.tsv").write_text(tsv)
                (d / "en" / f"{split}_avst.en").write_text(english)
    return muavic


def _run(*argv: str) -> int:
    return main(["data", "muavic", *argv])


def _report(data: Path) -> dict:
    return json.loads((data / "ingest_report.json").read_text())


def _outputs(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def test_merges_languages_and_pairs_readable_by_the_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    muavic = make_muavic(tmp_path / "src")
    data = tmp_path / "DATA"
    assert _run("--root", str(muavic.parent), "--out", str(data)) == 0
    out = capsys.readouterr().out
    assert "dropped rows: 0" in out and "es-en, fr-en" in out
    report = _report(data)
    assert report["ok"] and report["langs"] == ["en", "es", "fr"] and report["pairs"] == ["es-en", "fr-en"]
    assert report["merged_rows"] == {"train": 6, "valid": 6, "test": 6}

    m, words, langs = read_split(target_files(data, "train", task="avsr"))
    assert [r.id for r in m.rows] == _clip_ids("en", "train") + _clip_ids("es", "train") + _clip_ids("fr", "train")
    assert langs == ["en", "en", "es", "es", "fr", "fr"] and words[2] == f"es words of {_clip_ids('es', 'train')[0]}"
    assert m.root == muavic and not Path(m.rows[0].video).is_absolute()
    translations = (data / "train.en").read_text().splitlines()
    assert translations[:2] == ["", ""] and translations[4] == f"english of {_clip_ids('fr', 'train')[0]}"

    es, es_words, _ = read_split(target_files(data, "test", task="avsr", lang="es"))
    assert [r.id for r in es.rows] == _clip_ids("es", "test") and es_words[0].startswith("es words")
    for pair in ("es-en", "fr-en"):
        pm, english, _ = read_split(target_files(data, "valid", task="avst", pair=pair))
        assert len(pm.rows) == 2 and english[0].startswith("english of")
    kept = target_files(data, "train", task="avst", run_dir=tmp_path / "run")
    assert len(read_split(kept)[0].rows) == 4

    ds = AVDataset(data / "train.tsv", DataConfig(), labels=data / "train.wrd")
    item = ds[3]
    assert item.audio.shape[0] == SAMPLES and item.video.shape[0] == FRAMES and item.lang == "es"

    before = _outputs(data)
    assert _run("--root", str(muavic), "--out", str(data)) == 0
    assert _outputs(data) == before


def test_missing_media_dropped_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    muavic = make_muavic(tmp_path / "src", langs=("en", "es"))
    gone_video = muavic / "es" / "video" / "train" / f"{_clip_ids('es', 'train')[0]}.mp4"
    gone_audio = muavic / "en" / "audio" / "test" / f"{_clip_ids('en', 'test')[1]}.wav"
    gone_video.unlink()
    gone_audio.unlink()
    data = tmp_path / "DATA"
    assert _run("--root", str(muavic), "--out", str(data)) == 0
    out = capsys.readouterr().out
    assert str(gone_video) in out and str(gone_audio) in out and "dropped rows: 2" in out
    report = _report(data)
    missing = {p["detail"]: p for p in report["problems"] if p["kind"] == "missing_media"}
    assert set(missing) == {f"video file not found: {gone_video}", f"audio file not found: {gone_audio}"}
    assert missing[f"video file not found: {gone_video}"] == {
        "kind": "missing_media",
        "file": str(muavic / "es" / "train.tsv"),
        "detail": f"video file not found: {gone_video}",
        "line": 2,
        "id": _clip_ids("es", "train")[0],
    }
    assert report["rows"]["train"]["es"] == {"rows": 2, "kept": 1}
    ids = [r.id for r in read_split(target_files(data, "train", task="avst", pair="es-en"))[0].rows]
    assert ids == [_clip_ids("es", "train")[1]]
    assert _run("--root", str(muavic), "--out", str(tmp_path / "strict"), "--strict") == 2
    assert not (tmp_path / "strict" / "train.tsv").exists()


def test_mismatched_labels_are_an_error_naming_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    muavic = make_muavic(tmp_path / "src", langs=("en", "es"))
    labels = muavic / "es" / "valid.es"
    labels.write_text(labels.read_text() + "\none line too many")
    data = tmp_path / "DATA"
    assert _run("--root", str(muavic), "--out", str(data)) == 2
    err = capsys.readouterr().err
    assert str(labels) in err and str(muavic / "es" / "valid.tsv") in err and "3 label lines" in err
    report = _report(data)
    assert not report["ok"] and report["fatal"][0]["kind"] == "label_mismatch"
    assert not (data / "train.tsv").exists()


def test_bad_rows_duplicates_and_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    muavic = make_muavic(tmp_path / "src", langs=("en", "es"))
    tsv = muavic / "es" / "test.tsv"
    lines = tsv.read_text().splitlines()
    lines[1] = "\t".join(lines[1].split("\t")[:3] + ["-1", "-1"])
    tsv.write_text("\n".join(lines) + "\n")
    en_tsv = muavic / "en" / "valid.tsv"
    lines = en_tsv.read_text().splitlines()
    lines[2] = "\t".join([_clip_ids("es", "valid")[0], *lines[2].split("\t")[1:]])
    en_tsv.write_text("\n".join(lines) + "\n")
    data = tmp_path / "DATA"
    assert _run("--root", str(muavic), "--out", str(data)) == 2
    err = capsys.readouterr().err
    assert _clip_ids("es", "valid")[0] in err and "--prefix-ids" in err
    report = _report(data)
    assert [p["kind"] for p in report["fatal"]] == ["duplicate_id"]
    assert report["fatal"][0]["id"] == _clip_ids("es", "valid")[0]
    bad = [p for p in report["problems"] if p["kind"] == "bad_row"]
    assert bad[0]["file"] == str(tsv) and bad[0]["line"] == 2 and "negative" in bad[0]["detail"]

    assert _run("--root", str(muavic), "--out", str(data), "--prefix-ids", "--langs", "es", "en", "--pairs", "es-en") == 0
    m, _, langs = read_split(target_files(data, "valid", task="avsr"))
    assert [r.id for r in m.rows][2] == f"es/{_clip_ids('es', 'valid')[0]}" and langs[0] == "en"
    assert _report(data)["rows"]["test"]["es"] == {"rows": 2, "kept": 1}

    assert _run("--root", str(muavic), "--out", str(data), "--langs", "de") == 2
    assert "--langs de" in capsys.readouterr().err
    assert _run("--root", str(muavic), "--out", str(data), "--langs", "en", "--pairs", "es-en") == 2

    assert _run("--root", str(muavic), "--out", str(data), "--langs", "en") == 0
    assert (data / "muavic" / "en" / "train.en").is_file() and not (data / "muavic" / "es").exists()
    assert _report(data)["pairs"] == [] and (data / "train.en").read_text() == "\n\n"


def test_moved_tree_is_read_with_remap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = make_muavic(tmp_path / "old", langs=("es",))
    new = tmp_path / "new"
    old.parent.rename(new)
    data = tmp_path / "DATA"
    assert _run("--root", str(new), "--out", str(data)) == 0
    assert "no row kept of es/train, es/valid, es/test: if the tree was moved" in capsys.readouterr().out
    assert _report(data)["merged_rows"] == {"train": 0, "valid": 0, "test": 0}
    assert _run("--root", str(new), "--out", str(data), "--remap", f"{tmp_path / 'old'}={new}") == 0
    m, _, _ = read_split(target_files(data, "test", task="avst", pair="es-en"))
    assert len(m.rows) == 2 and (new / "muavic" / m.rows[0].video).is_file()
    assert _run("--root", str(new), "--out", str(data), "--remap", "nothing") == 2
