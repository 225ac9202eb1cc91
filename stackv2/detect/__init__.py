"""Detectors of the ``annotate`` stage: each adds columns, none drops a row (DESIGN "annotate first, decide later").

``language`` (go-enry), ``license`` (ScanCode + the paper's decision function), ``natural`` (fastText LID of prose),
``linestats`` (numpy line statistics) and ``annotate`` (all of them for one blob, as the Spark adapter calls them).
"""
