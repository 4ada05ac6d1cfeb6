"""Operations: backups and restores, metrics, the periodic checks that raise admin alerts.

Like ``app.py`` and ``supervision.py`` this is composition-root code: it reads the parts a
``HogaApp`` built (or, for ``hoga backup``/``restore``, the settings alone); nothing in the
service rooms imports it.
"""
