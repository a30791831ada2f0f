"""Routing: which department handles a case, at what priority and deadline, and why (ZEN decision tables)."""

from dispatch_rules.router import DecisionTableRouter
from dispatch_rules.stage import Router, make_dispatch_stages

__all__ = ["DecisionTableRouter", "Router", "make_dispatch_stages"]
