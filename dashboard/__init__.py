"""The tracklens dashboard: a multi-page Dash app (charts, models, check your track).

`dashboard.app.get_app()` builds the app once per process; `dashboard.app.serve()` runs it
under waitress. `dashboard.data` is the read-only, cached data layer the pages share.
"""
