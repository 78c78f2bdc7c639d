"""Web chat adapter: a try-out chat at /chat that drives the same conversation engine."""
