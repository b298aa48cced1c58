"""A parse callback whose module cannot be imported by worker processes."""

import multiprocessing

# A spawned worker imports this while it unpickles its arguments (`_inheriting`).
if getattr(multiprocessing.current_process(), "_inheriting", False):
    raise ImportError("this module refuses to load in a worker process")


def parse(record, tree):
    return {}
