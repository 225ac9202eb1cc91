"""Opt-out: the registry of requests and how a row matches one (``registry``), and the removal of opted-out rows
from a release already written (``release``: ``stackv2 optout apply | check | verify``). docs/optout.md."""
