"""The server's assembly, cut by job: ``hoga.app.HogaApp`` is the composition root and keeps
every public attribute; the modules here hold the steps it runs.

``market`` builds the simulated market, the feed choice (simulator, replay) and the hub;
``brokers`` builds the broker adapters behind their health monitor; ``feeds`` attaches the
broker feeds and the instrument master at start-up; ``startup`` and ``shutdown`` run DESIGN.md's
sequence and its reverse; ``background`` holds the periodic tasks (bars, the day roll);
``listeners`` the reactions to pause/resume, sign-in changes and new users; ``ops`` the
notifier, alerts and metrics listener; ``admin`` the CLI's ``AdminContext``. Like ``app.py``
these modules know every room; only ``app.py`` and ``ops/commands.py`` import them, and they
import ``hoga.cluster`` lazily (cluster mode only), as ``app.py`` does.
"""
