"""Imports the modules that register the built-in feeds, brokers, policies and callbacks."""

from kpremia.live import alerts, ccxt_broker, ccxt_feed, feeds, learning, monitoring, paper, policy, risk, snapshots  # noqa: F401
