"""The embedded multilingual talking-face corpus (see :mod:`avsr.corpus.build`)."""
