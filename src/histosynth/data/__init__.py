"""Real images in: the data sources (``builtin:ihc``, ``medmnist:<flag>``, ``folder:<path>``) and
the ``ingest`` stage that writes them as split class folders with a manifest."""
