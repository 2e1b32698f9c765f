"""A built net: the network (shapes, forward, backward, fusion), losses and metrics."""
