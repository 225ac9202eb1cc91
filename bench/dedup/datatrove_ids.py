"""A datatrove pipeline step for the benchmark's adapter: the id of every document, in the order datatrove numbers
them. Its MinHash stages name a document by its position in the reader's output (``doc_idx``), and the reader
drops documents without text, so that position is not the document's Parquet row: mapping by row shifted every
document after an empty one onto its neighbour. Kept apart from ``systems.py`` so that only the datatrove run
imports datatrove."""

from __future__ import annotations

from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep


class RecordIds(PipelineStep):
    """Passes documents on unchanged, writing their ids to ``<folder>/<rank>.ids``, one a line."""

    name = "record ids"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        with (Path(self.folder) / f"{rank:06d}.ids").open("w") as out:
            for doc in data:
                out.write(f"{doc.id}\n")
                yield doc


def read_ids(folder: Path, rank: int) -> list[str]:
    path = folder / f"{rank:06d}.ids"
    return path.read_text().splitlines() if path.exists() else []
