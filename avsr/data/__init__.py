"""Audio-visual data: MuAViC manifests + labels -> augmented, padded batches.

Public API::

    DataConfig, AVDataset, AVSample, AVBatch, collate, LengthBatchSampler,
    make_batch_sampler, make_dataloader, cnn_frames, read_audio, read_video_gray,
    make_synthetic_av_data
"""

from avsr.audio import read_audio
from avsr.data.batch import (
    PIXEL_MEAN,
    PIXEL_STD,
    UNIT_PAD,
    AVBatch,
    AVSample,
    collate,
    normalise_pixels,
)
from avsr.data.config import DataConfig
from avsr.data.dataset import AVDataset
from avsr.data.loader import make_batch_sampler, make_dataloader
from avsr.data.media import cnn_frames, read_video_gray, write_video_gray
from avsr.data.sampler import LengthBatchSampler
from avsr.data.synthetic import make_synthetic_av_data

__all__ = [
    "PIXEL_MEAN",
    "PIXEL_STD",
    "UNIT_PAD",
    "AVBatch",
    "AVDataset",
    "AVSample",
    "DataConfig",
    "LengthBatchSampler",
    "cnn_frames",
    "collate",
    "make_batch_sampler",
    "make_dataloader",
    "make_synthetic_av_data",
    "normalise_pixels",
    "read_audio",
    "read_video_gray",
    "write_video_gray",
]
