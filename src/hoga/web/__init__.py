"""The dashboard: static HTML, CSS and JavaScript served by ``hoga serve`` (no CDN)."""
