"""Noise-robust evaluation: the deterministic grid, scores, tables and plots.

- :mod:`avsr.evaluation.grid`: conditions (clean, noise type x SNR) x modality,
  deterministic per-clip noise, batched decoding (:func:`decode_grid`).
- :mod:`avsr.evaluation.run`: :class:`EvalConfig` and :func:`run_evaluation`
  (model + data + noise folder -> ``results.json``, ``results.md``, plots, hypotheses).
- :mod:`avsr.evaluation.results`: :class:`EvalResults` / :class:`Cell` (JSON) and
  :func:`markdown_table`.
- :mod:`avsr.evaluation.plots`: :func:`plot_metric_vs_snr` (returns the Figure) and
  :func:`write_plots`.

Import the submodules directly; this package imports nothing heavy.
"""
