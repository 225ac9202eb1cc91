"""Jupyter notebooks as training text (docs/spec.md §10.2, docs/notebooks.md): ``to_script`` (jupytext) and
``to_structured`` (markdown/code/output triplets) in ``convert``, the training documents in ``format``."""
