"""What a run tells its user: the one-screen summary at the end of a run (``summary``) and the HTML/PNG/JSON report
of a work folder (``render``; ``pipelines.run_report`` gathers its numbers)."""
