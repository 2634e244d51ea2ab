"""The app's pages (run through ``st.navigation`` by ``pages._shell``) and their shared helpers:
``_shell`` (the navigation, the sidebar and ``inside_app``), ``_keys`` (every session-state key),
``_state`` (widget state and the run it describes), ``_runs`` (run store, worker, cached engine
calls), ``_live`` (the Train page's live view), ``_figures`` (charts), ``_ntg_view`` (how an NTG
is shown), ``_export`` (chart and table export) and ``_url`` (shareable links)."""
