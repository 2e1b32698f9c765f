"""The command line: click only (parse, call, print); `nettrain` runs ``commands.main``."""
