"""``stackv2 reproduce``: contents for The Stack v2's published id tables. ``idtables`` reads the tables and plans
the output shards, ``run`` fetches and commits them, ``config`` holds the settings (README "Reproduce")."""
