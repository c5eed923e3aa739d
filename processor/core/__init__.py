"""Pure KPI core: no I/O, no framework imports, no clock. Event time is always an argument."""
