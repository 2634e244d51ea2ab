"""Transfer Lab in the browser: ``streamlit run app.py``.

The app itself (navigation, shared sidebar, start-up) is ``pages._shell``; each page in
``pages/`` reads its state, calls the engine (``tlcore``) and renders.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `pages` and `tlcore` import from a plain checkout
    sys.path.insert(0, str(ROOT))

# Guarded, with the import inside: the UMAP helper process (pages/_umap_worker.py) is spawned while
# Streamlit has made this script the __main__ module, and it imports it again under the name
# __mp_main__, needing none of the app.
if __name__ == "__main__":
    from pages import _shell

    _shell.main()
