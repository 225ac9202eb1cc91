"""The pipeline's stages, one module each (``STAGE``), in the order of ``pipelines._job.PIPELINE``."""
