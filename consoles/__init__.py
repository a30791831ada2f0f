"""Web consoles for call-centre agents, managers and analysts (server-rendered, assets served locally)."""

from consoles.pages import console_router

__all__ = ["console_router"]
