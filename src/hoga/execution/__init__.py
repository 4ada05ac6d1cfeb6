"""The order pipeline: one risk gate, a priority queue, rate limits, the dispatcher, reconciliation."""
