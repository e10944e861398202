"""The WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi run``."""

import gc

from app import create_app

app = create_app()

# What exists now (modules, mappers, the catalog, compiled statements) lives as long as the
# process: move it out of the collector's generations, so a full collection walks only what
# requests made since. Measured in a gunicorn worker serving checks: full collections of about
# 100 ms each, stalling every request in flight, fell to a few ms; a batch of 1,000 events spent
# about 22 ms in them before, about 1 ms after (README, Benchmarks).
gc.freeze()

# A request's objects nearly all go when it ends, freed by their reference counts; the collector
# only needs to find cycles. At Python's default of a young collection every 700 objects, a batch
# of 1,000 events set off about 40 young collections, each walking the batch's live objects
# again, and a full collection every third batch. Every 50,000 objects, a batch sets off none
# (measured in process over 80 batches: CPU per batch 32-34 ms -> 29 ms at the least).
gc.set_threshold(50_000, 20, 20)
