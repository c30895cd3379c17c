"""The web tier's floors: a trivial JSON view behind the shop's whole stack (settings.py, its
urlconf urls.py) and the same view in a bare Django under a plain WSGI server (bare_*.py)."""
