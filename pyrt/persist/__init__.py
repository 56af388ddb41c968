"""What survives a page reload (``persist=``): records and snapshots, the journal of changes
since the last write, and group commit to an asynchronous store. Pure; the stores themselves
(localStorage, IndexedDB, files) live in the adapters.
"""
