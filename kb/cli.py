"""The kb command line."""


def main() -> int:
    raise SystemExit("kb: not built yet")
