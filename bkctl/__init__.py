"""``bkctl``: the CI-side client of the allocation API (allocate, release, renew, status, pools, env)."""

__all__: list[str] = []
