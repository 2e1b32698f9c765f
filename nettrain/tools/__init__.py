"""Tools over a net: gradcheck, bench, summary, plot."""
