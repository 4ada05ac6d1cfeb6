"""``make chaos``: kill -9 the server (and the brokers, and its database sessions) mid-burst and
check that no acknowledged order is lost, none reaches a broker twice, none is left unsettled,
and hoga's books equal its fills and the brokers' books. ``python -m benchmarks.chaos --help``.

``procs`` runs the fakes and PostgreSQL chores, ``world`` sets up users and accounts through
the API, ``burst`` sends the orders, ``books`` checks, ``run`` strings the cycles together.
"""
