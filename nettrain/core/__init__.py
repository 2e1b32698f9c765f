"""Leaves: errors, option specs, random streams, file writing. They import nothing above."""
