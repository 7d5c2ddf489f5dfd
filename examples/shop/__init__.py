"""The shop from the event-driven architecture case study, on strom.views."""
