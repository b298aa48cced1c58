"""A parse callback whose module cannot be imported by worker processes."""

import multiprocessing

# A worker process imports this when it resolves the callback by name.
if multiprocessing.parent_process() is not None:
    raise ImportError("this module refuses to load in a worker process")


def parse(record, tree):
    return {}
