"""Adapters from real contact-center sources to the contract's lifecycle events (docs/ingest.md).

Each adapter is a pure mapper (a line or a row in, contract events out, no I/O, no clock) and the
shell (`kpi ingest ...`, processor/ingest/shell.py) reads files, follows them and sends the events.
"""
