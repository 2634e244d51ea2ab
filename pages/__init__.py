"""The app's pages (run through ``st.navigation`` in app.py) and their shared helpers
(``_keys``: every session-state key; ``_ui``: state, cached engine calls, charts)."""
