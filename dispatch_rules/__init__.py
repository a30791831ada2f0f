"""Routing: which department handles a case, at what priority and deadline, and why."""

from dispatch_rules.baseline import BaselineRouter, RoutingTable
from dispatch_rules.stage import Router, make_dispatch_stages

__all__ = ["BaselineRouter", "Router", "RoutingTable", "make_dispatch_stages"]
