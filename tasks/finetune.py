"""``avsr finetune``: fine-tune an AV (or plain XLS-R) encoder for AVSR or AVST.

    avsr finetune --task avsr --head ctc --modality a --data DATA --init AV_DIR --out RUN \\
        --config configs/finetune_tiny.yaml [--lang es | --pair es-en] [--set key=value ...]

Steps (rank 0 writes, every rank trains; run under ``torchrun`` for DDP):

1. targets: ``DATA/{split}.wrd`` (or ``DATA/muavic/{lang}/{split}.{lang}``) for avsr,
   ``DATA/muavic/{src}/en/{split}.en`` for avst (see :mod:`tasks.finetune_data`);
2. tokenizer: SentencePiece unigram on the normalised train targets -> ``RUN/tokenizer.model``
   (kept on resume);
3. model: ``--init`` is an AV model dir (kind ``av``) or any XLS-R encoder (project dir,
   HF dir, fairseq1 ``.pt``; the lip encoder and fusion are then fresh, from the ``av``
   config section), or a fine-tuned model dir (its encoder: e.g. AVST from an AVSR model,
   ASR encoder pretraining for translation; and its head too when task, head type and
   tokenizer match, ``model.init_head``: e.g. AV after audio-only fine-tuning), plus a fresh
   CTC head or Transformer decoder otherwise;
4. training: the project's torchrun loop (:mod:`avsr.train`): the encoder frozen for the
   first ``train.freeze_updates`` updates, checkpoints + exact resume under
   ``RUN/checkpoints``, validation WER (avsr) or BLEU (avst) by decoding the valid split
   in each input mode of ``valid.modalities`` (``wer_av``, ``wer_a``, ``wer_v``), the best
   checkpoint by the training mode's score kept (``RUN/checkpoints/best``); ``--modality av``
   drops one modality of some rows (``model.modality_dropout``, rates logged at the start);
5. export: the best (else last) weights as a self-describing fine-tuned model ``RUN/model``.

``RUN/config.yaml`` records what the run used: the effective modality dropout, the scored
validation modes and, under ``av``, the encoder's AV settings (an AV or fine-tuned
``--init`` keeps its own; the config's ``av`` section only builds the lip encoder and fusion
around a plain XLS-R encoder).

``--modality a`` trains on audio with the video features zeroed, exactly as modality
dropout does; the video is then not even decoded. The model keeps its video path, so it
can be evaluated with ``--modality av`` (zero-shot AV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.cli_args import add_config_arg, add_set_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=["avsr", "avst"], help="recognition (transcripts) or X->En translation")
    parser.add_argument("--head", choices=["ctc", "s2s"], help="CTC (avsr only) or Transformer decoder")
    parser.add_argument("--modality", choices=["av", "a", "v"], help="training input: av, a (video zeros), v")
    parser.add_argument("--data", required=True, type=Path, help="preprocessed DATA folder (avsr preprocess)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lang", help="one language: DATA/muavic/LANG (default: every language of DATA)")
    group.add_argument("--pair", help="translation pair SRC-en: DATA/muavic/SRC/en")
    parser.add_argument("--init", required=True, type=Path, help="AV model dir, an XLS-R encoder (dir or .pt), or a fine-tuned model dir (its encoder; its head too when it fits, model.init_head)")
    parser.add_argument("--out", required=True, type=Path, help="run folder (resumes when it has checkpoints)")
    add_config_arg(parser, "YAML config (configs/finetune_*.yaml)", type=Path)
    add_set_arg(parser, "override a config field, e.g. train.max_updates=200 (repeatable)")


def main(args: argparse.Namespace) -> int:
    from avsr.data.config import check_noise_request
    from tasks.finetune_config import resolve_config
    from tasks.finetune_run import run_finetune

    cfg = resolve_config(args)
    check_noise_request(cfg.data, args.config)
    run_finetune(cfg, data=args.data, init=args.init, out=args.out)
    return 0
