"""The one-time weights mirror: a Hugging Face snapshot at a pinned commit, copied into S3 (mirror_weights.py).

mirror_weights.py is a standalone script (the Job runs it as a file); this package only makes it importable in tests.
"""
