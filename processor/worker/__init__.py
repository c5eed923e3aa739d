"""The Faust worker: the shell around processor/core, split by responsibility (see worker/app.py)."""
