"""HTTP and WebSocket API (FastAPI). Routers call services; they never touch tables directly."""
