"""What people read: numbers (:mod:`.format`), terminal tables (:mod:`.table`, :mod:`.terminal`), the
comparison's text (:mod:`.comparison`), the Markdown report (:mod:`.markdown`) and its plots (:mod:`.plots`).

Nothing is imported here: callers import the module they need, when they need it, so that ``pytest
--help`` and the comparison itself (which words its verdict with :mod:`.format`) stay light.
"""
