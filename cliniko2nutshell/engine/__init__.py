"""The migration engine: plan, journal, runs (sample, full, delta, retry), recovery, diff, reconcile, rollback.

Start at api.py (`Engine`, `status`). The engine imports no Textual and reports progress as typed events
(events.py); it talks to Nutshell only through the `Destination` protocol (destination.py), implemented over
the Nutshell client by destination_nutshell.py.
"""
